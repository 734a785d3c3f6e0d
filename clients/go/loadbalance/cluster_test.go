package loadbalance_test

// The book's client against a running 3-node ProgLog cluster over mutual TLS: discovery through
// GetServers, produces to the leader, consumes from the followers. scripts/client-tests.sh starts
// the cluster and sets PROGLOG_ADDR (any node) and PROGLOG_CERTS (the dev certificates of
// `proglog certs`); without them the test is skipped.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	api "github.com/proglog/proglog/clients/go/gen/log/v1"
	"github.com/proglog/proglog/clients/go/loadbalance"
)

const records = 24

// Generous bounds that only keep a broken cluster from hanging the test.
const (
	clusterReadyTimeout = 60 * time.Second
	rpcTimeout          = 10 * time.Second
	followerCatchUp     = 30 * time.Second
)

func clusterEnv(t *testing.T) (addr, certs string) {
	addr, certs = os.Getenv("PROGLOG_ADDR"), os.Getenv("PROGLOG_CERTS")
	if addr == "" || certs == "" {
		t.Skip("PROGLOG_ADDR and PROGLOG_CERTS are not set: run scripts/client-tests.sh, which starts a 3-node cluster")
	}
	return addr, certs
}

// clientCreds is mutual TLS as the given identity (its certificate's CN is the ACL subject).
func clientCreds(t *testing.T, certs, identity string) credentials.TransportCredentials {
	t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(certs, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("no certificate in %s/ca.pem", certs)
	}
	cert, err := tls.LoadX509KeyPair(
		filepath.Join(certs, identity+".pem"),
		filepath.Join(certs, identity+"-key.pem"),
	)
	if err != nil {
		t.Fatal(err)
	}
	return credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		MinVersion:   tls.VersionTLS12,
	})
}

// waitForCluster returns the servers once all three are listed with exactly one leader.
func waitForCluster(t *testing.T, client api.LogClient) (leader string, followers []string) {
	t.Helper()
	deadline := time.Now().Add(clusterReadyTimeout)
	var last string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
		res, err := client.GetServers(ctx, &api.GetServersRequest{})
		cancel()
		if err == nil {
			leader, followers = "", nil
			for _, s := range res.Servers {
				if s.IsLeader {
					if leader != "" {
						leader = "two leaders"
					} else {
						leader = s.RpcAddr
					}
				} else {
					followers = append(followers, s.RpcAddr)
				}
			}
			if len(res.Servers) == 3 && leader != "" && leader != "two leaders" {
				return leader, followers
			}
			last = fmt.Sprintf("servers %v", res.Servers)
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("the cluster did not list 3 servers with one leader in %s; last answer: %s", clusterReadyTimeout, last)
	return "", nil
}

// served records, per call, the picker's choice and the address of the connection that really
// carried the call (grpc.Peer), so the test checks routing on the wire, not only the intent.
type served struct {
	mu    sync.Mutex
	picks []loadbalance.Pick
}

func (s *served) record(p loadbalance.Pick) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.picks = append(s.picks, p)
}

func (s *served) lastPick(t *testing.T) loadbalance.Pick {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.picks) == 0 {
		t.Fatal("the call was not routed by the proglog picker")
	}
	return s.picks[len(s.picks)-1]
}

func TestBookClientProducesToLeaderConsumesFromFollowers(t *testing.T) {
	seed, certs := clusterEnv(t)
	creds := clientCreds(t, certs, "root")

	direct, err := grpc.NewClient(seed, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	leader, followers := waitForCluster(t, api.NewLogClient(direct))
	t.Logf("leader %s, followers %v", leader, followers)

	// The book's client setup: the proglog resolver and balancer, chosen by the target's scheme.
	conn, err := grpc.NewClient(fmt.Sprintf("%s:///%s", loadbalance.Name, seed), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := api.NewLogClient(conn)
	picks := &served{}
	withPicks := func(ctx context.Context) context.Context { return loadbalance.WithPickRecorder(ctx, picks.record) }

	nonce := time.Now().UnixNano()
	value := func(i int) string { return fmt.Sprintf("book-client-%d-record-%d", nonce, i) }

	offsets := make([]uint64, records)
	for i := range records {
		ctx, cancel := context.WithTimeout(withPicks(context.Background()), rpcTimeout)
		var p peer.Peer
		res, err := client.Produce(ctx, &api.ProduceRequest{Record: &api.Record{Value: []byte(value(i))}}, grpc.Peer(&p))
		cancel()
		if err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
		offsets[i] = res.Offset
		if got := p.Addr.String(); got != leader {
			t.Fatalf("produce %d was served by %s, want the leader %s", i, got, leader)
		}
		if pick := picks.lastPick(t); !pick.ToLeader || pick.Addr != leader {
			t.Fatalf("produce %d: picker chose %+v, want the leader %s", i, pick, leader)
		}
		// This test is the cluster's only writer, so offsets are contiguous.
		if i > 0 && offsets[i] != offsets[i-1]+1 {
			t.Fatalf("produce %d got offset %d after %d", i, offsets[i], offsets[i-1])
		}
	}

	servedBy := map[string]int{}
	for i, offset := range offsets {
		record, addr := consumeFromFollower(t, client, withPicks, picks, offset)
		if string(record.Value) != value(i) || record.Offset != offset {
			t.Fatalf("consume %d: got offset %d value %q, want offset %d value %q",
				offset, record.Offset, record.Value, offset, value(i))
		}
		servedBy[addr]++
	}
	for addr := range servedBy {
		if addr == leader {
			t.Fatalf("a consume was served by the leader %s: %v", leader, servedBy)
		}
	}
	for _, f := range followers {
		if servedBy[f] == 0 {
			t.Fatalf("follower %s served no consume (round-robin expected): %v", f, servedBy)
		}
	}
	t.Logf("consumes served by followers: %v", servedBy)

	// ConsumeStream is routed like Consume: one stream from the first offset, from a follower.
	ctx, cancel := context.WithTimeout(withPicks(context.Background()), followerCatchUp)
	defer cancel()
	stream, err := client.ConsumeStream(ctx, &api.ConsumeRequest{Offset: offsets[0]})
	if err != nil {
		t.Fatalf("consume stream: %v", err)
	}
	for i, offset := range offsets {
		res, err := stream.Recv()
		if err != nil {
			t.Fatalf("consume stream, record %d: %v", i, err)
		}
		if string(res.Record.Value) != value(i) || res.Record.Offset != offset {
			t.Fatalf("consume stream %d: got offset %d value %q, want offset %d value %q",
				i, res.Record.Offset, res.Record.Value, offset, value(i))
		}
	}
	p, ok := peer.FromContext(stream.Context())
	if !ok || p.Addr.String() == leader {
		t.Fatalf("the consume stream was served by %v (leader %s), want a follower", p, leader)
	}
	if pick := picks.lastPick(t); pick.ToLeader || pick.Addr != p.Addr.String() {
		t.Fatalf("consume stream: picker chose %+v, served by %s", pick, p.Addr)
	}
}

// consumeFromFollower reads one record, retrying while the follower that got the call has not
// applied it yet (OutOfRange): followers answer from their own committed log.
func consumeFromFollower(
	t *testing.T,
	client api.LogClient,
	withPicks func(context.Context) context.Context,
	picks *served,
	offset uint64,
) (*api.Record, string) {
	t.Helper()
	deadline := time.Now().Add(followerCatchUp)
	for {
		ctx, cancel := context.WithTimeout(withPicks(context.Background()), rpcTimeout)
		var p peer.Peer
		res, err := client.Consume(ctx, &api.ConsumeRequest{Offset: offset}, grpc.Peer(&p))
		cancel()
		if err == nil {
			pick := picks.lastPick(t)
			if pick.ToLeader || pick.Addr != p.Addr.String() {
				t.Fatalf("consume %d: picker chose %+v, served by %s", offset, pick, p.Addr)
			}
			return res.Record, p.Addr.String()
		}
		if status.Code(err) != codes.OutOfRange || time.Now().After(deadline) {
			t.Fatalf("consume %d: %v", offset, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestIdentityWithoutPermissionIsDenied(t *testing.T) {
	seed, certs := clusterEnv(t)
	// "nobody" has a certificate from the same CA but no ACL entry: TLS succeeds, the RPC is refused.
	conn, err := grpc.NewClient(seed, grpc.WithTransportCredentials(clientCreds(t, certs, "nobody")))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	_, err = api.NewLogClient(conn).Produce(ctx, &api.ProduceRequest{Record: &api.Record{Value: []byte("x")}})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("produce as nobody: got %v, want PermissionDenied", err)
	}
}
