"""A ProgLog client in Python with grpcio: the book's discovery pattern without a custom balancer.

It asks any node for the cluster's servers (GetServers), keeps one mutual-TLS channel per server,
sends produces to the leader and spreads consumes round-robin over the followers (which answer
from their own committed log, so a just-produced record may need a moment to reach them).

The log.v1 stubs (log/v1/log_pb2.py, log_pb2_grpc.py) are generated with grpcio-tools, not
committed: clients/python/generate.sh writes them to clients/python/gen, which must be on
sys.path (PYTHONPATH) before this module is imported.

    python proglog_client.py --addr 127.0.0.1:8401 --certs .proglog/certs produce hello world
    python proglog_client.py --addr 127.0.0.1:8401 --certs .proglog/certs consume --from 0
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from dataclasses import dataclass

import grpc

from log.v1 import log_pb2, log_pb2_grpc

# Every call has a deadline, so an unresponsive node fails the call instead of hanging it.
RPC_TIMEOUT_SECONDS = 10.0


def channel_credentials(certs_dir: str, identity: str = "root") -> grpc.ChannelCredentials:
    """Mutual TLS as `identity`: its certificate's CN is the subject the node's ACL checks."""

    def read(name: str) -> bytes:
        with open(os.path.join(certs_dir, name), "rb") as f:
            return f.read()

    return grpc.ssl_channel_credentials(
        root_certificates=read("ca.pem"),
        private_key=read(f"{identity}-key.pem"),
        certificate_chain=read(f"{identity}.pem"),
    )


@dataclass(frozen=True)
class Served:
    """A record and the address of the server that returned it."""

    record: log_pb2.Record
    addr: str


class ClusterClient:
    """Produces to the leader and consumes from the followers of the cluster `seed_addr` is in."""

    def __init__(self, seed_addr: str, credentials: grpc.ChannelCredentials):
        self._credentials = credentials
        self._channels: dict[str, grpc.Channel] = {}
        seed = self._stub(seed_addr)
        servers = seed.GetServers(log_pb2.GetServersRequest(), timeout=RPC_TIMEOUT_SECONDS).servers
        leaders = [s.rpc_addr for s in servers if s.is_leader]
        if len(leaders) != 1:
            raise RuntimeError(f"want exactly one leader, GetServers said {list(servers)}")
        self.leader = leaders[0]
        self.followers = [s.rpc_addr for s in servers if not s.is_leader]
        # With no follower, reads go to the leader.
        self._readers = itertools.cycle(self.followers or [self.leader])

    def _stub(self, addr: str) -> log_pb2_grpc.LogStub:
        if addr not in self._channels:
            self._channels[addr] = grpc.secure_channel(addr, self._credentials)
        return log_pb2_grpc.LogStub(self._channels[addr])

    def produce(self, value: bytes) -> int:
        """Appends one record on the leader; returns its offset."""
        request = log_pb2.ProduceRequest(record=log_pb2.Record(value=value))
        return self._stub(self.leader).Produce(request, timeout=RPC_TIMEOUT_SECONDS).offset

    def consume(self, offset: int, catch_up_seconds: float = 30.0) -> Served:
        """Reads one record from the next follower, retrying while followers have not applied it
        yet (OUT_OF_RANGE) for at most `catch_up_seconds`."""
        deadline = time.monotonic() + catch_up_seconds
        while True:
            addr = next(self._readers)
            try:
                response = self._stub(addr).Consume(
                    log_pb2.ConsumeRequest(offset=offset), timeout=RPC_TIMEOUT_SECONDS
                )
                return Served(record=response.record, addr=addr)
            except grpc.RpcError as err:
                if err.code() != grpc.StatusCode.OUT_OF_RANGE or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()

    def __enter__(self) -> ClusterClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--addr", default="127.0.0.1:8401", help="any node, HOST:PORT")
    parser.add_argument("--certs", default=".proglog/certs", help="directory of `proglog certs`")
    parser.add_argument("--identity", default="root", help="client certificate NAME.pem to use")
    commands = parser.add_subparsers(dest="command", required=True)
    produce = commands.add_parser("produce", help="append values, print their offsets")
    produce.add_argument("values", nargs="+")
    consume = commands.add_parser("consume", help="print records from an offset to the end")
    consume.add_argument("--from", dest="start", type=int, default=0)
    args = parser.parse_args(argv)

    with ClusterClient(args.addr, channel_credentials(args.certs, args.identity)) as client:
        if args.command == "produce":
            for value in args.values:
                print(client.produce(value.encode()))
            return 0
        offset = args.start
        while True:
            try:
                served = client.consume(offset, catch_up_seconds=0)
            except grpc.RpcError as err:
                if err.code() == grpc.StatusCode.OUT_OF_RANGE:
                    return 0  # the end of the log
                raise
            print(f"{served.record.offset}\t{served.addr}\t{served.record.value.decode(errors='replace')}")
            offset += 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
