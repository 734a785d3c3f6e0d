// Package loadbalance is the client-side discovery and load balancing of "Distributed Services
// with Go" (chapter "Discover Servers and Load Balance from the Client"), written against the
// current grpc-go API: a resolver for targets "proglog:///HOST:PORT" that asks that node for the
// cluster's servers (GetServers), and a balancer whose picker sends produces to the leader and
// consumes to the followers, round-robin.
//
// Import it for its side effect (it registers the "proglog" resolver scheme and balancer), then
// dial "proglog:///" + any node's address with the same transport credentials as a direct dial.
package loadbalance

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"

	api "github.com/proglog/proglog/clients/go/gen/log/v1"
)

// Name is both the resolver scheme and the balancer name, as in the book.
const Name = "proglog"

// isLeaderKey is the resolver.Address attribute telling the picker which server leads.
type isLeaderKey struct{}

// GetServersTimeout bounds each GetServers call of the resolver, so a node that accepts the
// connection but never answers cannot stall discovery.
var GetServersTimeout = 10 * time.Second

// RetryInterval spaces the resolver's GetServers calls while they fail or name no leader.
var RetryInterval = 250 * time.Millisecond

func init() {
	resolver.Register(&resolverBuilder{})
}

type resolverBuilder struct{}

func (*resolverBuilder) Scheme() string { return Name }

func (*resolverBuilder) Build(
	target resolver.Target,
	cc resolver.ClientConn,
	opts resolver.BuildOptions,
) (resolver.Resolver, error) {
	// The resolver talks to the seed node with the channel's own credentials: with mutual TLS
	// the same client certificate must be accepted by the node's ACL for GetServers ("consume").
	creds := opts.DialCreds
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	seed, err := grpc.NewClient(target.Endpoint(), grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("proglog resolver: connecting to %q: %w", target.Endpoint(), err)
	}
	r := &Resolver{
		clientConn:    cc,
		seed:          seed,
		logClient:     api.NewLogClient(seed),
		serviceConfig: cc.ParseServiceConfig(fmt.Sprintf(`{"loadBalancingConfig":[{%q:{}}]}`, Name)),
		// One pending request is enough: requests that arrive while one waits coalesce into it.
		resolveNow: make(chan struct{}, 1),
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Add(1)
	go r.run(ctx)
	r.ResolveNow(resolver.ResolveNowOptions{})
	return r, nil
}

// Resolver keeps the channel's address list equal to the cluster's GetServers answer. Calls to
// GetServers run on its own goroutine, never on gRPC's, since each may take up to
// GetServersTimeout.
type Resolver struct {
	clientConn    resolver.ClientConn
	seed          *grpc.ClientConn
	logClient     api.LogClient
	serviceConfig *serviceconfig.ParseResult
	resolveNow    chan struct{}
	cancel        context.CancelFunc
	closeOnce     sync.Once
	wg            sync.WaitGroup
}

// ResolveNow asks for a fresh GetServers; gRPC calls it when a connection fails.
func (r *Resolver) ResolveNow(resolver.ResolveNowOptions) {
	select {
	case r.resolveNow <- struct{}{}:
	default: // one is already pending
	}
}

// Close stops the resolver and closes its connection to the seed node.
func (r *Resolver) Close() {
	r.closeOnce.Do(func() {
		r.cancel()
		r.wg.Wait()
		_ = r.seed.Close()
	})
}

func (r *Resolver) run(ctx context.Context) {
	defer r.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.resolveNow:
		}
		// Until an answer names a leader (GetServers failed, or an election is in progress),
		// ask again every RetryInterval: writes are waiting for the leader.
		for !r.resolve(ctx) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(RetryInterval):
			}
		}
	}
}

// resolve asks for the servers and hands them to the channel; it reports whether the answer
// named a leader.
func (r *Resolver) resolve(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, GetServersTimeout)
	defer cancel()
	res, err := r.logClient.GetServers(ctx, &api.GetServersRequest{})
	if err != nil {
		r.clientConn.ReportError(fmt.Errorf("proglog resolver: GetServers: %w", err))
		return false
	}
	if len(res.Servers) == 0 {
		r.clientConn.ReportError(fmt.Errorf("proglog resolver: GetServers returned no servers"))
		return false
	}
	addrs := make([]resolver.Address, 0, len(res.Servers))
	haveLeader := false
	for _, server := range res.Servers {
		haveLeader = haveLeader || server.IsLeader
		addr := resolver.Address{
			Addr:       server.RpcAddr,
			Attributes: attributes.New(isLeaderKey{}, server.IsLeader),
		}
		// TLS verifies each node by the name it advertises (in Kubernetes, its own pod DNS
		// name), not by the seed's name from the target.
		if host, _, err := net.SplitHostPort(server.RpcAddr); err == nil {
			addr.ServerName = host
		}
		addrs = append(addrs, addr)
	}
	if err := r.clientConn.UpdateState(resolver.State{
		Addresses:     addrs,
		ServiceConfig: r.serviceConfig,
	}); err != nil {
		r.clientConn.ReportError(fmt.Errorf("proglog resolver: updating state: %w", err))
		return false
	}
	return haveLeader
}

// IsLeader reports whether the resolver marked this address as the cluster's leader.
func IsLeader(addr resolver.Address) bool {
	leader, _ := addr.Attributes.Value(isLeaderKey{}).(bool)
	return leader
}
