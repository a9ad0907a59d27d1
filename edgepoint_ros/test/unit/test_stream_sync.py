"""Approximate-time synchroniser on synthetic stamps: jitter, missing frames, reordering, threads."""
import threading

import numpy as np
import pytest

from edgepoint_ros.conversions import stamp_to_ns
from edgepoint_ros.stream_sync import ApproximateTimeSynchronizer, StampedBuffer

MS = 1_000_000
PERIOD = 33 * MS


def _conserved(sync):
    """Every message is emitted, dropped (counted) or still queued."""
    stats = sync.stats()
    for s in range(sync.num_streams):
        assert stats.received[s] == stats.emitted[s] + stats.dropped_total(s) + stats.queued[s]
    return stats


def _feed(sync, events):
    """events: (stream, stamp_ns, frame number) in arrival order -> emitted sets."""
    out = []
    for stream, stamp, frame in events:
        out += sync.add(stream, stamp, (stream, frame))
    return out


def _stereo_events(frames, jitter_ms, seed=0, drop_left=(), drop_right=()):
    rng = np.random.default_rng(seed)
    events = []
    for f in range(frames):
        t = 1_000_000 * MS + f * PERIOD  # realistic epoch-sized stamps
        offset = int(rng.uniform(-jitter_ms, jitter_ms) * MS)
        pair = [(0, t, f), (1, t + offset, f)]
        if rng.random() < 0.5:
            pair.reverse()  # either camera's message may arrive first
        events += [e for e in pair if not ((e[0] == 0 and f in drop_left)
                                           or (e[0] == 1 and f in drop_right))]
    return events


def test_exact_and_jittered_pairs_are_all_matched():
    for jitter in (0.0, 2.0):
        sync = ApproximateTimeSynchronizer(2, queue_size=5, slop_s=0.005)
        sets = _feed(sync, _stereo_events(100, jitter, seed=1))
        assert len(sets) == 100
        assert all(left[1] == right[1] for left, right in (s.messages for s in sets))
        assert all(abs(s.stamps_ns[0] - s.stamps_ns[1]) <= 5 * MS for s in sets)
        stats = _conserved(sync)
        assert stats.sets_emitted == 100 and sum(stats.queued) == 0
        assert all(stats.dropped_total(s) == 0 for s in (0, 1))


def test_missing_frames_are_counted_per_stream():
    drop_left, drop_right = {5, 6, 40}, {20, 77}
    sync = ApproximateTimeSynchronizer(2, queue_size=5, slop_s=0.005)
    sets = _feed(sync, _stereo_events(100, 2.0, seed=2, drop_left=drop_left,
                                      drop_right=drop_right))
    assert len(sets) == 95
    assert all(left[1] == right[1] for left, right in (s.messages for s in sets))
    sync.flush()
    stats = _conserved(sync)
    # the partners of the missing frames found no partner: right lost 3, left lost 2
    assert stats.dropped["no_partner"][1] + stats.dropped["unmatched_at_end"][1] == 3
    assert stats.dropped["no_partner"][0] + stats.dropped["unmatched_at_end"][0] == 2


def test_out_of_order_arrivals_within_a_stream_still_pair():
    # Reordering is absorbed as long as it happens before the synchroniser has
    # decided past the message (see the next test for the other case).
    t = [k * PERIOD for k in range(4)]
    sync = ApproximateTimeSynchronizer(2, queue_size=10, slop_s=0.003)
    events = [(0, t[1], 1), (0, t[0], 0),                     # left 0 and 1 swapped
              (1, t[0] + MS, 0), (1, t[1] - MS, 1),
              (1, t[3], 3), (1, t[2] + MS, 2),                # right 2 and 3 swapped
              (0, t[2], 2), (0, t[3], 3)]
    sets = _feed(sync, events)
    assert [tuple(m[1] for m in s.messages) for s in sets] == [(0, 0), (1, 1), (2, 2), (3, 3)]
    stats = _conserved(sync)
    assert sum(stats.queued) == 0


def test_message_behind_the_released_stamps_is_dropped_as_late():
    sync = ApproximateTimeSynchronizer(2, slop_s=0.003)
    _feed(sync, [(0, 0, 0), (1, 0, 0), (0, PERIOD, 1), (1, PERIOD, 1)])
    assert sync.add(0, PERIOD // 2, (0, "late")) == []
    # Right 3 arrives before right 2: left 2 is dropped as partnerless (the right
    # stream seems to have moved on). A right frame stamped 5 ms before left 2
    # then has no possible partner left (slop 3 ms): late at once. One stamped
    # exactly like left 2 could still meet a left frame up to 3 ms later: queued.
    _feed(sync, [(0, 2 * PERIOD, 2), (1, 3 * PERIOD, 3)])
    assert sync.add(1, 2 * PERIOD - 5 * MS, (1, 2)) == []
    stats = _conserved(sync)
    assert stats.dropped["late"] == [1, 1] and stats.dropped["no_partner"] == [1, 0]
    sync.add(1, 2 * PERIOD, (1, "2b"))
    assert _conserved(sync).queued == [0, 2]


def test_closer_partner_wins():
    # right 20 ms is within slop of left 0 ms but closer to left 30 ms
    sync = ApproximateTimeSynchronizer(2, slop_s=0.025)
    sets = _feed(sync, [(0, 0, "L0"), (0, 30 * MS, "L30"), (1, 20 * MS, "R20")])
    assert [tuple(m[1] for m in s.messages) for s in sets] == [("L30", "R20")]
    assert sync.stats().dropped["no_partner"] == [1, 0]


def test_a_silent_stream_makes_the_others_overflow():
    drops = []
    sync = ApproximateTimeSynchronizer(3, queue_size=4, slop_s=0.005,
                                       on_drop=lambda *d: drops.append(d))
    for f in range(10):
        sync.add(0, f * PERIOD, f)
        sync.add(1, f * PERIOD + MS, f)
    stats = _conserved(sync)
    assert stats.dropped["queue_overflow"] == [6, 6, 0] and stats.queued == [4, 4, 0]
    assert drops[0] == (0, 0, "queue_overflow")
    # the third camera comes back: frame 9 completes a set
    assert [s.messages for s in sync.add(2, 9 * PERIOD + 2 * MS, 9)] == [(9, 9, 9)]
    _conserved(sync)


def test_three_streams_span_within_slop():
    rng = np.random.default_rng(3)
    received = []
    sync = ApproximateTimeSynchronizer(3, queue_size=5, slop_s=0.004,
                                       callback=lambda *m: received.append(m))
    for f in range(50):
        base = f * PERIOD
        for s in rng.permutation(3):
            sync.add(int(s), base + int(rng.uniform(0, 3.9) * MS), f)
    assert received == [(f, f, f) for f in range(50)]
    _conserved(sync)


def test_concurrent_producers():
    sync = ApproximateTimeSynchronizer(2, queue_size=50, slop_s=0.002)
    frames = 500

    def produce(stream):
        for f in range(frames):
            sync.add(stream, f * PERIOD + stream * MS, f)

    threads = [threading.Thread(target=produce, args=(s,)) for s in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sync.flush()
    stats = _conserved(sync)
    # one thread can run far ahead and overflow its queue; whatever is lost is
    # counted, and a frame that lost one side loses the other too
    assert stats.dropped_total(0) == stats.dropped_total(1) == frames - stats.sets_emitted
    assert stats.sets_emitted > 0


def test_stamp_conversion_and_bad_arguments():
    from builtin_interfaces.msg import Time
    assert stamp_to_ns(Time(sec=3, nanosec=5)) == 3_000_000_005
    with pytest.raises(ValueError, match="num_streams must be >= 2"):
        ApproximateTimeSynchronizer(1)
    with pytest.raises(ValueError, match="queue_size must be >= 1"):
        ApproximateTimeSynchronizer(2, queue_size=0)
    with pytest.raises(ValueError, match="slop_s must be >= 0"):
        ApproximateTimeSynchronizer(2, slop_s=-0.1)
    with pytest.raises(ValueError, match=r"stream must be in 0..1; got 2"):
        ApproximateTimeSynchronizer(2).add(2, 0, None)


def test_stamped_buffer_finds_by_stamp_and_waits_for_a_late_item():
    buffer = StampedBuffer(3)
    for stamp in (1, 2, 3, 4):
        buffer.add(stamp * MS, f"frame {stamp}")
    assert buffer.find(1 * MS) is None            # pushed out: 3 kept
    assert buffer.find(3 * MS) == "frame 3"
    buffer.add(3 * MS, "frame 3 again")
    assert buffer.find(3 * MS) == "frame 3 again"  # the newest of a stamp
    late = threading.Timer(0.05, buffer.add, (9 * MS, "late frame"))
    late.start()
    try:
        assert buffer.find(9 * MS, wait_s=10.0) == "late frame"  # returns when it arrives
    finally:
        late.cancel()
    assert buffer.find(10 * MS, wait_s=0.05) is None
    buffer.clear()
    assert buffer.find(9 * MS) is None
