package service

import (
	"bytes"
	"encoding/json"
	"time"

	"polyvirt/internal/api/engineapi"
)

// hostJSON is a host view's JSON made in two steps, so that the leader's
// list, whose hosts' statistics change every few seconds, encodes a host
// once per read of its row (when a page first shows it) and then only
// splices its latest statistics in: base is the view's JSON without its lastSeen, statsAt
// and stats, at the offset where they go (-1: the view has a report or
// pools after them, and is encoded whole each time).
type hostJSON struct {
	base []byte
	at   int
}

// newHostJSON encodes a view without its statistics.
func newHostJSON(v *engineapi.Host) (hostJSON, error) {
	c := *v
	c.LastSeen, c.StatsAt, c.Stats = time.Time{}, time.Time{}, nil
	b, err := json.Marshal(&c)
	if err != nil {
		return hostJSON{}, err
	}
	at := -1
	if len(c.Capabilities) == 0 && len(c.Pools) == 0 {
		// The three fields come right before "version" (engineapi.Host's
		// order); nothing after it holds that key, and no key inside a
		// string can hold an unescaped quote.
		at = bytes.LastIndex(b, []byte(`,"version":`))
	}
	return hostJSON{base: b, at: at}, nil
}

// laid are the statistics a view shows (laidStats): the document, when it
// was taken, and the host's last contact.
type laid struct {
	stats    json.RawMessage
	at, seen time.Time
}

// laidOf are the statistics a view holds itself.
func laidOf(v *engineapi.Host) laid { return laid{v.Stats, v.StatsAt, v.LastSeen} }

// setOn makes them v's.
func (l laid) setOn(v *engineapi.Host) { v.Stats, v.StatsAt, v.LastSeen = l.stats, l.at, l.seen }

// appendWith appends the view's JSON with the statistics l (its lastSeen,
// statsAt and stats) to dst: the same document json.Marshal makes of v
// with them. A statistics document that is not JSON (an agent's bad push)
// is left out rather than failing the whole list. Only a view JSON cannot
// be spliced into is copied (every host of every page goes through here).
func (j hostJSON) appendWith(dst []byte, v *engineapi.Host, l laid) ([]byte, error) {
	if j.at < 0 {
		return appendMarshalLaid(dst, v, l)
	}
	start := len(dst)
	out := append(dst, j.base[:j.at]...)
	for _, f := range []struct {
		key string
		t   time.Time
	}{{`,"lastSeen":"`, l.seen}, {`,"statsAt":"`, l.at}} {
		if f.t.IsZero() {
			continue
		}
		if y := f.t.Year(); y < 0 || y > 9999 {
			// As time.Time's MarshalJSON: no such year in RFC 3339.
			return appendMarshalLaid(out[:start], v, l)
		}
		out = append(out, f.key...)
		out = f.t.AppendFormat(out, time.RFC3339Nano)
		out = append(out, '"')
	}
	if len(l.stats) > 0 {
		n := len(out)
		out = append(out, `,"stats":`...)
		buf := bytes.NewBuffer(out)
		if err := json.Compact(buf, l.stats); err != nil {
			out = buf.Bytes()[:n]
		} else {
			out = buf.Bytes()
		}
	}
	return append(out, j.base[j.at:]...), nil
}

// appendMarshalLaid is appendMarshal of a copy of v with the statistics l.
func appendMarshalLaid(dst []byte, v *engineapi.Host, l laid) ([]byte, error) {
	c := *v
	l.setOn(&c)
	return appendMarshal(dst, &c)
}

// appendMarshal appends json.Marshal's document of v to dst (without its
// statistics when they are not JSON).
func appendMarshal(dst []byte, v *engineapi.Host) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil && len(v.Stats) > 0 {
		c := *v
		c.Stats = nil
		b, err = json.Marshal(&c)
	}
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}
