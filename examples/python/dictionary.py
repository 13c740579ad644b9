"""A distributed dictionary: word counts kept in shards that live on the workers.

    python3 dictionary.py                        serial: one simulated worker, one shard
    PARC_SERIAL=4 python3 dictionary.py          four simulated workers, four shards
    mpiexec.mpich -n 3 python3 dictionary.py     rank 0 manages, ranks 1-2 own a shard each

Each worker owns one Shard, built there with parc.Proxy.create(Shard, owner=r);
a word belongs to shard crc32(word) % shards (a hash that is the same on every rank).
Farm tasks count the words of one text each and add each shard's part to it through
its proxy, straight to the owner: the counts never pass through the manager. The
manager then reads the shards back and checks the totals against a serial count.
"""

import collections
import random
import threading
import zlib

import parc

WORDS = ("the quick brown fox jumps over a lazy dog while seven wizards "
         "quietly box the jovial frog near my old oak tree").split()
TEXTS = 40  # texts of 5000 words each


def text(seed):
    return " ".join(random.Random(seed).choices(WORDS, k=5000))


class Shard:
    """One part of the dictionary, word -> count, on its owner. Other ranks' calls run
    there on parc's progress thread, the owner's own tasks' calls on its main thread:
    hence the lock."""

    def __init__(self):
        self.counts, self.lock = {}, threading.Lock()

    def add(self, counts):
        with self.lock:
            for word, count in counts.items():
                self.counts[word] = self.counts.get(word, 0) + count

    def __getitem__(self, word):
        return self.counts[word]

    def snapshot(self):
        with self.lock:
            return dict(self.counts)


def shard_of(word, shards):
    return zlib.crc32(word.encode()) % shards


@parc.closure
def count(seed, shards):
    """Counts text(seed)'s words and adds them to their shards; returns how many."""
    parts = [collections.Counter() for _ in shards]
    words = text(seed).split()
    for word in words:
        parts[shard_of(word, len(shards))][word] += 1
    for shard, part in zip(shards, parts):
        if part:
            shard.add(dict(part))  # runs at the shard's owner
    return len(words)


def main():
    owners = range(1, parc.workers() + 1)
    shards = [parc.Proxy.create(Shard, owner=r) for r in owners]
    with parc.TaskFarm() as farm:
        counted = sum(farm.map(count, range(TEXTS), [shards] * TEXTS))

    contents = [shard.snapshot() for shard in shards]  # copies of the owners' dicts
    totals = collections.Counter()
    for part in contents:
        totals.update(part)
    expected = collections.Counter(w for seed in range(TEXTS) for w in text(seed).split())
    print(f"{TEXTS} texts, {counted} words, {len(totals)} distinct, in {len(shards)} "
          f"shard(s) on ranks {[shard.owner for shard in shards]} "
          f"holding {[len(part) for part in contents]} words")
    fox = shards[shard_of("fox", len(shards))]["fox"]  # one entry, read at its owner
    print("most common:", ", ".join(f"{w} {n}" for w, n in totals.most_common(3)),
          f"(fox {fox})")
    same = totals == expected and sum(totals.values()) == counted and fox == expected["fox"]
    placed = all(shard_of(w, len(shards)) == i for i, part in enumerate(contents) for w in part)
    print(f"same counts as one serial pass: {same}; every word in its own shard: {placed}")
    del shards, contents
    live = sum(parc.live_objects(r) for r in owners)
    print(f"shards released: {live} objects left on the workers")
    return 0 if same and placed and live == 0 else 1


if __name__ == "__main__":
    parc.run(main)
