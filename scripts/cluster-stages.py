#!/usr/bin/env python3
"""Cut the stage timelines of a cluster's processes (TWINSITE_STAGES=PREFIX, one file
PREFIX.PID per process; crates/cluster/src/stages.rs) into one cycle per order and print the
median time of each stage, in microseconds from the primary reading the order.

Usage: scripts/cluster-stages.py PREFIX

The primary is the process that marks "order read"; the others are followers F1, F2 (in pid
order). A stage seen several times in a cycle is numbered (#1, #2, ...). The first fifth of
the cycles is skipped (warm-up). Also printed: how the commit waits, from the first
follower's answer and the leader's own fdatasync.
"""
import collections
import glob
import statistics
import sys

NAMES = {
    1: "order read", 2: "core done", 3: "proposed", 4: "log append", 5: "append write start",
    6: "append written", 7: "wal sync start", 8: "wal synced", 9: "answer read",
    10: "committed", 11: "replies released", 13: "reply write start", 14: "reply written",
    20: "append read", 21: "answer write start", 22: "answer written",
}


def main(prefix):
    files = collections.defaultdict(list)
    for path in glob.glob(prefix + ".*"):
        pid = path.rsplit(".", 1)[1]
        with open(path) as f:
            files[pid] += [tuple(map(int, line.split())) for line in f if line.strip()]
    events = []
    followers = 0
    for pid, marks in sorted(files.items(), key=lambda kv: int(kv[0])):
        if any(stage == 1 for stage, _ in marks):
            who = "P"
        else:
            followers += 1
            who = "F%d" % followers
        events += [(nanos, who, stage) for stage, nanos in marks]
    events.sort()
    cycles, current = [], None
    for nanos, who, stage in events:
        if who == "P" and stage == 1:
            if current:
                cycles.append(current)
            current = [(nanos, who, stage)]
        elif current is not None:
            current.append((nanos, who, stage))
    cycles = cycles[len(cycles) // 5:]
    if not cycles:
        sys.exit("no cycles: was TWINSITE_STAGES set for the node processes?")
    offsets = collections.defaultdict(list)
    waits = []
    for cycle in cycles:
        t0 = cycle[0][0]
        seen = collections.Counter()
        first = {}
        for nanos, who, stage in cycle[1:]:
            seen[(who, stage)] += 1
            us = (nanos - t0) / 1000
            offsets[(who, stage, seen[(who, stage)])].append(us)
            first.setdefault((who, stage), us)
        answers = [us for (who, stage), us in first.items() if stage == 22 and who != "P"]
        if answers and ("P", 8) in first and ("P", 10) in first:
            waits.append((min(answers), first[("P", 8)], first[("P", 10)]))
    print("cycles: %d (orders), medians in us from the primary reading the order" % len(cycles))
    for (who, stage, n), us in sorted(offsets.items(), key=lambda kv: statistics.median(kv[1])):
        if len(us) > len(cycles) * 0.3:
            print("  %6.0f  %-3s %-20s #%d  (%d cycles)" % (
                statistics.median(us), who, NAMES.get(stage, stage), n, len(us)))
    if waits:
        later = sum(1 for a, s, _ in waits if s > a) * 100 / len(waits)
        print("first follower answer written: %.0f us; leader's own fdatasync done: %.0f us "
              "(after the answer in %.0f%% of cycles); commit reported: %.0f us" % (
                  statistics.median(w[0] for w in waits), statistics.median(w[1] for w in waits),
                  later, statistics.median(w[2] for w in waits)))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
