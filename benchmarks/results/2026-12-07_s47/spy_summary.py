"""Summarises a py-spy raw (collapsed) file from spy_steps.py: samples per thread, the top leaf frames (own time)
per thread, and the top frames by inclusive samples. `python spy_summary.py FILE[.gz] [TOP]`."""
import collections
import gzip
import re
import sys

path, top = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 25
threads = collections.Counter()
leaves = collections.defaultdict(collections.Counter)
inclusive = collections.defaultdict(collections.Counter)
for line in (gzip.open(path, "rt") if path.endswith(".gz") else open(path)):
    stack, _, count = line.rstrip().rpartition(" ")
    frames = stack.split(";")
    thread, n = frames[0], int(count)
    thread = re.sub(r"\(\d+\)", "", thread)
    threads[thread] += n
    short = [re.sub(r" \(.*?\)$", "", f) if "(lib" in f or "(0x" in f else re.sub(r":\d+\)$", ")", f)
             for f in frames[1:]]
    leaves[thread][short[-1] if short else "-"] += n
    for f in set(short):
        inclusive[thread][f] += n
for thread, n in threads.most_common():
    print(f"== {thread}: {n} samples")
    print("  own:")
    for f, c in leaves[thread].most_common(top):
        print(f"    {c:6d} {100 * c / n:5.1f}%  {f[:150]}")
    print("  inclusive:")
    for f, c in inclusive[thread].most_common(top):
        print(f"    {c:6d} {100 * c / n:5.1f}%  {f[:150]}")
