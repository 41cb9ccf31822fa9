#!/usr/bin/env python3
"""Cut a scheduler trace into order cycles (scripts/cluster-order-timeline.sh).

Usage: cluster-order-timeline.py PIDS TRACE [EXAMPLES]
  PIDS   lines "primary|backup|witness|bench PID"
  TRACE  `perf script -F tid,cpu,time,event,trace` of sched_switch, sched_wakeup and
         fdatasync entry/exit
A cycle runs from one wake-up of the bench (an execution report arrived) to the next.
"""
import re
import statistics
import sys

names = {}
for line in open(sys.argv[1]):
    role, pid = line.split()
    names[int(pid)] = role.upper()[:4]
examples = int(sys.argv[3]) if len(sys.argv) > 3 else 3
bench = next(p for p, r in names.items() if r == "BENC")
nodes = ("PRIM", "BACK", "WITN")

events = []
for line in open(sys.argv[2]):
    m = re.match(r"\s*(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s*(.*)", line)
    if m:
        tid, cpu, t, event, rest = m.groups()
        events.append((float(t) * 1e6, int(tid), int(cpu), event.split(":")[1], rest))


def name(tid):
    return names.get(tid, str(tid))


def describe(tid, event, rest):
    if event == "sched_switch":
        m = re.search(r"prev_pid=(\d+).*prev_state=(\S+) ==> next_comm=\S+ next_pid=(\d+)", rest)
        return "%s(%s) -> %s" % (name(int(m.group(1))), m.group(2), name(int(m.group(3))))
    if event == "sched_wakeup":
        return "wake " + name(int(re.search(r"pid=(\d+)", rest).group(1)))
    return event


wakes = [
    i for i, (_, _, _, e, rest) in enumerate(events)
    if e == "sched_wakeup" and re.search(r"pid=%d " % bench, rest)
]
offsets = {}
for k in range(len(wakes) - 1):
    first, last = wakes[k], wakes[k + 1]
    t0 = events[first][0]
    offsets.setdefault("cycle (next execution report)", []).append(events[last][0] - t0)
    counts = {}
    for t, tid, cpu, event, rest in events[first:last]:
        key = None
        if event == "sched_switch":
            m = re.search(r"prev_pid=(\d+).*prev_state=(\S+) ==> next_comm=\S+ next_pid=(\d+)", rest)
            if int(m.group(1)) == bench and m.group(2) == "S":
                key = "bench sleeps (order sent)"
            elif name(int(m.group(3))) in nodes:
                key = "run " + name(int(m.group(3)))
        elif event == "sched_wakeup":
            woken = name(int(re.search(r"pid=(\d+)", rest).group(1)))
            if woken in nodes:
                key = "wake " + woken
        else:
            key = "%s %s" % (name(tid), event.replace("sys_", ""))
        if key:
            n = counts.get(key, 0)
            counts[key] = n + 1
            offsets.setdefault("%s #%d" % (key, n), []).append(t - t0)
    if k < examples:
        print("---- cycle %d: %.0f us" % (k, events[last][0] - t0))
        for t, tid, cpu, event, rest in events[first:last + 1]:
            print("%7.0f cpu%d %-6s %s" % (t - t0, cpu, name(tid), describe(tid, event, rest)))
cycles = len(wakes) - 1
print("cycles: %d; median offset in us of each milestone seen in most cycles:" % cycles)
rows = [(statistics.median(v), k, len(v)) for k, v in offsets.items() if len(v) > cycles / 2]
for median, key, n in sorted(rows):
    print("%7.0f  %-40s (%d cycles)" % (median, key, n))
