package loadbalance

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"
	"google.golang.org/grpc/resolver"

	api "github.com/proglog/proglog/clients/go/gen/log/v1"
)

// fakeSubConn stands for a ready connection; the embedded interface satisfies the methods the
// picker never calls.
type fakeSubConn struct {
	balancer.SubConn
	addr string
}

func buildPicker(t *testing.T, leader string, followers ...string) balancer.Picker {
	t.Helper()
	ready := map[balancer.SubConn]base.SubConnInfo{}
	add := func(addr string, isLeader bool) {
		ready[&fakeSubConn{addr: addr}] = base.SubConnInfo{Address: resolver.Address{
			Addr:       addr,
			Attributes: attributes.New(isLeaderKey{}, isLeader),
		}}
	}
	if leader != "" {
		add(leader, true)
	}
	for _, f := range followers {
		add(f, false)
	}
	return (&pickerBuilder{}).Build(base.PickerBuildInfo{ReadySCs: ready})
}

func pick(t *testing.T, p balancer.Picker, method string) (string, bool) {
	t.Helper()
	var recorded []Pick
	ctx := WithPickRecorder(context.Background(), func(p Pick) { recorded = append(recorded, p) })
	res, err := p.Pick(balancer.PickInfo{FullMethodName: method, Ctx: ctx})
	if err != nil {
		t.Fatalf("Pick(%s): %v", method, err)
	}
	addr := res.SubConn.(*fakeSubConn).addr
	if len(recorded) != 1 || recorded[0].Addr != addr || recorded[0].Method != method {
		t.Fatalf("Pick(%s) chose %s but recorded %+v", method, addr, recorded)
	}
	return addr, recorded[0].ToLeader
}

func TestPickerSendsWritesToLeader(t *testing.T) {
	p := buildPicker(t, "leader:1", "follower:2", "follower:3")
	for _, method := range []string{
		api.Log_Produce_FullMethodName,
		api.Log_ProduceStream_FullMethodName,
		api.Log_ProduceBatch_FullMethodName,
		api.Log_GetServers_FullMethodName,
	} {
		for range 3 {
			if addr, toLeader := pick(t, p, method); addr != "leader:1" || !toLeader {
				t.Fatalf("%s went to %s (to leader: %v), want leader:1", method, addr, toLeader)
			}
		}
	}
}

func TestPickerSpreadsReadsOverFollowers(t *testing.T) {
	p := buildPicker(t, "leader:1", "follower:2", "follower:3")
	counts := map[string]int{}
	for i := range 10 {
		method := api.Log_Consume_FullMethodName
		if i%2 == 1 {
			method = api.Log_ConsumeStream_FullMethodName
		}
		addr, toLeader := pick(t, p, method)
		if toLeader {
			t.Fatalf("%s went to the leader %s", method, addr)
		}
		counts[addr]++
	}
	if counts["follower:2"] != 5 || counts["follower:3"] != 5 {
		t.Fatalf("reads were not round-robin over both followers: %v", counts)
	}
}

func TestPickerFallsBack(t *testing.T) {
	onlyLeader := buildPicker(t, "leader:1")
	if addr, _ := pick(t, onlyLeader, api.Log_Consume_FullMethodName); addr != "leader:1" {
		t.Fatalf("with no follower a read went to %s, want the leader", addr)
	}
	noLeader := buildPicker(t, "", "follower:2")
	if addr, _ := pick(t, noLeader, api.Log_GetLogBounds_FullMethodName); addr != "follower:2" {
		t.Fatalf("with no ready leader a bounds read went to %s, want the follower", addr)
	}
	// A write waits for the leader rather than taking an extra hop through a follower.
	_, err := noLeader.Pick(balancer.PickInfo{FullMethodName: api.Log_Produce_FullMethodName, Ctx: context.Background()})
	if !errors.Is(err, balancer.ErrNoSubConnAvailable) {
		t.Fatalf("with no ready leader a write got %v, want ErrNoSubConnAvailable", err)
	}
	empty := buildPicker(t, "")
	_, err = empty.Pick(balancer.PickInfo{FullMethodName: api.Log_Produce_FullMethodName, Ctx: context.Background()})
	if !errors.Is(err, balancer.ErrNoSubConnAvailable) {
		t.Fatalf("with no ready connection Pick returned %v, want ErrNoSubConnAvailable", err)
	}
}
