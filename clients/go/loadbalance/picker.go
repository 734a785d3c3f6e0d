package loadbalance

import (
	"context"
	"sync/atomic"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"

	api "github.com/proglog/proglog/clients/go/gen/log/v1"
)

func init() {
	balancer.Register(base.NewBalancerBuilder(Name, &pickerBuilder{}, base.Config{}))
}

// Writes go to the leader: a ProgLog follower would forward them there anyway, one hop later.
var leaderMethods = map[string]bool{
	api.Log_Produce_FullMethodName:       true,
	api.Log_ProduceStream_FullMethodName: true,
	api.Log_ProduceBatch_FullMethodName:  true,
}

// Reads go to the followers, taking load off the leader (they answer from their committed log,
// which may trail the leader briefly).
var followerMethods = map[string]bool{
	api.Log_Consume_FullMethodName:       true,
	api.Log_ConsumeStream_FullMethodName: true,
}

type pickerBuilder struct{}

// Build makes a picker over the connections that are ready now; the base balancer builds a new
// one whenever that set changes.
func (*pickerBuilder) Build(info base.PickerBuildInfo) balancer.Picker {
	p := &Picker{}
	for sc, scInfo := range info.ReadySCs {
		target := pickTarget{subConn: sc, addr: scInfo.Address.Addr}
		if IsLeader(scInfo.Address) {
			p.leader = &target
		} else {
			p.followers = append(p.followers, target)
		}
	}
	return p
}

type pickTarget struct {
	subConn balancer.SubConn
	addr    string
}

// Picker routes one call: writes to the leader, consumes round-robin over the followers, and
// anything else (GetServers, GetLogBounds) to the leader. With no ready follower, consumes go to
// the leader; other reads go to a follower while the leader is not ready. A write waits for the
// leader's connection (or the RPC's deadline): the resolver re-asks GetServers while the cluster
// names no leader, and each new answer or ready connection builds a new picker.
type Picker struct {
	leader    *pickTarget
	followers []pickTarget
	next      atomic.Uint64
}

// Pick implements balancer.Picker.
func (p *Picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	var target *pickTarget
	switch {
	case leaderMethods[info.FullMethodName]:
		target = p.leader
	case followerMethods[info.FullMethodName] && len(p.followers) > 0:
		target = p.nextFollower()
	case p.leader != nil:
		target = p.leader
	case len(p.followers) > 0:
		target = p.nextFollower()
	}
	if target == nil {
		// gRPC holds the call until the next picker (or its deadline).
		return balancer.PickResult{}, balancer.ErrNoSubConnAvailable
	}
	if record, ok := info.Ctx.Value(pickRecorderKey{}).(func(Pick)); ok {
		record(Pick{
			Method:   info.FullMethodName,
			Addr:     target.addr,
			ToLeader: target == p.leader,
		})
	}
	return balancer.PickResult{SubConn: target.subConn}, nil
}

func (p *Picker) nextFollower() *pickTarget {
	i := p.next.Add(1) - 1
	return &p.followers[i%uint64(len(p.followers))]
}

// Pick is the picker's decision for one call, reported to a recorder installed with
// WithPickRecorder.
type Pick struct {
	Method   string
	Addr     string
	ToLeader bool
}

type pickRecorderKey struct{}

// WithPickRecorder returns a context whose calls report each pick to record (a call retried by
// gRPC is picked, and reported, again). For tests and debugging.
func WithPickRecorder(ctx context.Context, record func(Pick)) context.Context {
	return context.WithValue(ctx, pickRecorderKey{}, record)
}
