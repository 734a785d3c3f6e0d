"""The Python example against a running 3-node ProgLog cluster over mutual TLS.

scripts/client-tests.sh starts the cluster, generates the stubs and runs
    PYTHONPATH=<stubs> PROGLOG_ADDR=<any node> PROGLOG_CERTS=<dev certs> python -m unittest -v
Without PROGLOG_ADDR and PROGLOG_CERTS the tests are skipped.
"""

import os
import time
import unittest

import grpc

from log.v1 import log_pb2, log_pb2_grpc
from proglog_client import RPC_TIMEOUT_SECONDS, ClusterClient, channel_credentials

ADDR = os.environ.get("PROGLOG_ADDR", "")
CERTS = os.environ.get("PROGLOG_CERTS", "")
RECORDS = 24
CLUSTER_READY_SECONDS = 60.0


def wait_for_cluster() -> ClusterClient:
    """A client once the cluster lists three servers with one leader (or the last error)."""
    deadline = time.monotonic() + CLUSTER_READY_SECONDS
    while True:
        try:
            client = ClusterClient(ADDR, channel_credentials(CERTS))
            if len(client.followers) == 2:
                return client
            client.close()
            last = f"followers {client.followers}"
        except (grpc.RpcError, RuntimeError) as err:
            last = str(err)
        if time.monotonic() > deadline:
            raise AssertionError(f"no 3-node cluster with a leader at {ADDR}: {last}")
        time.sleep(0.2)


@unittest.skipUnless(ADDR and CERTS, "PROGLOG_ADDR and PROGLOG_CERTS are not set: run scripts/client-tests.sh")
class ClusterClientTest(unittest.TestCase):
    def test_produce_to_leader_consume_from_followers(self):
        with wait_for_cluster() as client:
            self.assertNotIn(client.leader, client.followers)
            values = [f"python-{time.time_ns()}-record-{i}".encode() for i in range(RECORDS)]
            offsets = [client.produce(v) for v in values]
            # This test is the cluster's only writer, so offsets are contiguous.
            self.assertEqual(offsets, list(range(offsets[0], offsets[0] + RECORDS)))

            served_by = {}
            for offset, value in zip(offsets, values):
                served = client.consume(offset)
                self.assertEqual(served.record.offset, offset)
                self.assertEqual(served.record.value, value)
                served_by[served.addr] = served_by.get(served.addr, 0) + 1
            # Every read came from a follower, and both followers took a share.
            self.assertEqual(set(served_by), set(client.followers), served_by)

    def test_identity_without_permission_is_denied(self):
        # "nobody" has a certificate from the same CA but no ACL entry: TLS succeeds, the RPC is
        # refused with PERMISSION_DENIED.
        channel = grpc.secure_channel(ADDR, channel_credentials(CERTS, identity="nobody"))
        try:
            stub = log_pb2_grpc.LogStub(channel)
            with self.assertRaises(grpc.RpcError) as caught:
                stub.Produce(
                    log_pb2.ProduceRequest(record=log_pb2.Record(value=b"x")),
                    timeout=RPC_TIMEOUT_SECONDS,
                )
            self.assertEqual(caught.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        finally:
            channel.close()

    def test_untrusted_server_is_refused(self):
        # A client that trusts another CA must not talk to the node at all.
        with open(os.path.join(CERTS, "root.pem"), "rb") as f:
            not_the_ca = f.read()
        with open(os.path.join(CERTS, "root-key.pem"), "rb") as f:
            key = f.read()
        creds = grpc.ssl_channel_credentials(
            root_certificates=not_the_ca, private_key=key, certificate_chain=not_the_ca
        )
        channel = grpc.secure_channel(ADDR, creds)
        try:
            with self.assertRaises(grpc.RpcError) as caught:
                log_pb2_grpc.LogStub(channel).GetServers(
                    log_pb2.GetServersRequest(), timeout=RPC_TIMEOUT_SECONDS
                )
            self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAVAILABLE)
        finally:
            channel.close()


if __name__ == "__main__":
    unittest.main()
