"""Objects the soak (soak.py) owns on worker ranks through parc.Proxy.

They live in a module of their own so that every rank imports them by name (soak.py's
directory is sys.path[0] on every rank) and the factories travel by reference, as in an
application; a class of __main__ would travel by value (cloudpickle) at each create.
"""

import os
import socket


class Counter:
    """Counts the adds it receives: each add(k) of the soak carries a k that no other add
    carries, so total, count and xor tell whether every add arrived exactly once."""

    def __init__(self, start=0):
        self.start = start
        self.total = start
        self.count = 0
        self.xor = 0

    def add(self, k):
        self.total += k
        self.count += 1
        self.xor ^= k
        return (k, self.count)

    def state(self):
        return (self.total, self.count, self.xor)


class Probe:
    """Where it was built: the soak learns each rank's pid and host from one."""

    def __init__(self):
        self.pid = os.getpid()
        self.host = socket.gethostname()
