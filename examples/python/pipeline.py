"""A three-stage pipeline over numpy arrays: generate -> transform (2 workers) -> reduce.

    python3 pipeline.py                       serial (one process, one simulated worker)
    PARC_SERIAL=4 python3 pipeline.py         serial, four simulated workers
    mpiexec.mpich -n 4 python3 pipeline.py    generate on rank 1, transform on ranks 2-3,
                                              reduce on rank 1

Each seed becomes a noisy sine wave (generate), which is low-pass filtered with an FFT
(transform, the expensive stage, given two workers), and reduced to its dominant
frequency (reduce). The seeds are a generator: the pipeline reads them as items leave,
so a stream of any length runs in bounded memory. The arrays travel between stages
through rank 0 as pickled bytes (numpy buffers out-of-band), never unpickled there.
"""

from collections import Counter

import numpy as np

import parc

SIGNALS = 200
POINTS = 1 << 14


@parc.closure
def generate(seed: int) -> np.ndarray:
    """A sine of frequency 1 + seed % 5 (cycles per signal) buried in noise."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, POINTS, endpoint=False)
    return np.sin(2 * np.pi * (1 + seed % 5) * t) + 0.5 * rng.standard_normal(POINTS)


@parc.closure
def transform(signal: np.ndarray) -> np.ndarray:
    """Low-pass filter: keep the 16 lowest frequencies."""
    spectrum = np.fft.rfft(signal)
    spectrum[16:] = 0
    return np.fft.irfft(spectrum, n=signal.size)


@parc.closure
def reduce(smooth: np.ndarray) -> int:
    """The dominant frequency of the filtered signal."""
    return int(np.argmax(np.abs(np.fft.rfft(smooth))[1:]) + 1)


def seeds():
    yield from range(SIGNALS)  # any iterable works, an endless one too


def main():
    pipe = parc.Pipeline([generate, parc.Stage(transform, workers=2), reduce])
    print("stages on ranks:", pipe.ranks())
    found = list(pipe.run(seeds()))  # in input order
    right = sum(f == 1 + seed % 5 for seed, f in enumerate(found))
    counts = Counter(found)
    print(f"{SIGNALS} signals of {POINTS} points: generate -> transform (2 workers) -> reduce")
    print("dominant frequencies:", ", ".join(f"{f}: {counts[f]}" for f in sorted(counts)))
    print(f"frequency recovered for {right} of {SIGNALS} signals")
    return 0 if right == SIGNALS else 1


if __name__ == "__main__":
    parc.run(main)
