package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
)

// Update is a change of routing states that Watch delivers.
type Update struct {
	// Full is true when Models is the complete routing state of every model that has one:
	// the first update, and every update after the watch had to start over (the etcd
	// history it needed was compacted, or the connection was lost). A model missing from a
	// full update has no routing state. When Full is false, Models holds only the models
	// whose routing state changed.
	Full bool
	// Models are routing states: name, task, aliases, live split, shadow versions, revision
	// and update time; no versions. A model whose routing state was deleted has revision 0
	// and nothing live.
	Models []*modelv1.RegisteredModel
	// Revision is the etcd revision the update brings the watcher to.
	Revision int64
}

// Watch follows every model's routing state (the serving keys) and sends an Update on the
// returned channel for each change, starting with a full one. Changes made in one promotion
// arrive in one update. The channel is closed when ctx is done. Updates are not dropped: a
// slow reader holds the watch back.
func (r *Registry) Watch(ctx context.Context) <-chan Update {
	out := make(chan Update)
	go func() {
		defer close(out)
		for ctx.Err() == nil {
			err := r.watchOnce(ctx, out)
			if ctx.Err() != nil {
				return
			}
			_ = err // start over with a full update after a short pause
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return out
}

func (r *Registry) watchOnce(ctx context.Context, out chan<- Update) error {
	full, rev, err := r.routingSnapshot(ctx)
	if err != nil {
		return err
	}
	select {
	case out <- Update{Full: true, Models: full, Revision: rev}:
	case <-ctx.Done():
		return ctx.Err()
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for resp := range r.etcd.Watch(wctx, Prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
		if err := resp.Err(); err != nil {
			if errors.Is(err, rpctypes.ErrCompacted) {
				return fmt.Errorf("watching the registry: %w", err)
			}
			return err
		}
		u := Update{Revision: resp.Header.Revision}
		for _, ev := range resp.Events {
			key := string(ev.Kv.Key)
			name, ok := strings.CutSuffix(strings.TrimPrefix(key, Prefix), "/serving")
			if !ok || strings.Contains(name, "/") {
				continue
			}
			m := &modelv1.RegisteredModel{Name: name}
			if ev.Type == clientv3.EventTypePut {
				if err := proto.Unmarshal(ev.Kv.Value, m); err != nil {
					continue
				}
				m.Revision = ev.Kv.ModRevision
			}
			m.Versions = nil
			u.Models = append(u.Models, m)
		}
		if len(u.Models) == 0 {
			continue
		}
		select {
		case out <- u:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return errors.New("watching the registry: the watch ended")
}

// routingSnapshot reads every model's routing state at one revision.
func (r *Registry) routingSnapshot(ctx context.Context) ([]*modelv1.RegisteredModel, int64, error) {
	keys, err := r.etcd.Get(ctx, Prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, 0, fmt.Errorf("listing routing states: %w", err)
	}
	var gets []clientv3.Op
	for _, kv := range keys.Kvs {
		if strings.HasSuffix(string(kv.Key), "/serving") {
			gets = append(gets, clientv3.OpGet(string(kv.Key)))
		}
	}
	// One transaction reads them all, at the listing's revision or later; the watch starts
	// after the listing's, so nothing is missed (a change may come twice).
	resp, err := r.etcd.Txn(ctx).Then(gets...).Commit()
	if err != nil {
		return nil, 0, fmt.Errorf("reading routing states: %w", err)
	}
	var out []*modelv1.RegisteredModel
	for _, rr := range resp.Responses {
		for _, kv := range rr.GetResponseRange().GetKvs() {
			name, _ := strings.CutSuffix(strings.TrimPrefix(string(kv.Key), Prefix), "/serving")
			m := &modelv1.RegisteredModel{}
			if err := proto.Unmarshal(kv.Value, m); err != nil {
				return nil, 0, fmt.Errorf("%w: routing state of %s: %v", ErrCorrupt, name, err)
			}
			m.Name, m.Revision, m.Versions = name, kv.ModRevision, nil
			out = append(out, m)
		}
	}
	return out, keys.Header.Revision, nil
}
