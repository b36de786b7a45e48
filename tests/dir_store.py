"""A RetentionStore kept on disk (tests only): each frame a file in one
directory, so that a sender process that dies and starts again resumes its
stream (spread.flow's retention store protocol: append/read/low/high/trim).
Also runnable: the sender process of tests/test_flow_reconnect.py.

    python dir_store.py ADDRESS NAME GROUP STREAM DIR
        then, per line read on stdin, "send FIRST N" (sends FIRST..FIRST+N-1,
        prints "sent") or "end" (closes the channel cleanly)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator


class DirStore:
    """Frames as files ``<seq>`` in ``path``; at most ``max_frames`` kept."""

    def __init__(self, path: str, max_frames: int = 100_000) -> None:
        os.makedirs(path, exist_ok=True)
        self.path = path
        self.max_frames = max_frames
        seqs = sorted(int(n) for n in os.listdir(path) if n.isdigit())
        self._low = seqs[0] if seqs else 1
        self._high = seqs[-1] if seqs else 0

    def _file(self, seq: int) -> str:
        return os.path.join(self.path, str(seq))

    def append(self, seq: int, frame: bytes) -> None:
        if self._high and seq != self._high + 1:
            raise ValueError(f"frame {seq} does not follow {self._high}")
        tmp = self._file(seq) + ".tmp"
        with open(tmp, "wb") as f:
            f.write(frame)
        os.replace(tmp, self._file(seq))  # whole or not at all
        if not self._high:
            self._low = seq
        self._high = seq
        while self._high - self._low + 1 > self.max_frames:
            self.trim(self._low + 1)

    def read(self, first: int, last: int) -> Iterator[tuple[int, bytes]]:
        for seq in range(max(first, self._low), min(last, self._high) + 1):
            with open(self._file(seq), "rb") as f:
                yield seq, f.read()

    def low(self) -> int:
        return self._low

    def high(self) -> int:
        return self._high

    def trim(self, below: int) -> None:
        while self._low < min(below, self._high + 1):
            os.unlink(self._file(self._low))
            self._low += 1


def _sender(address: str, name: str, group: str, stream: int, path: str) -> None:
    import time

    import spread
    import spread.flow as flow

    deadline = time.monotonic() + 10
    while True:  # the daemon may hold the name a moment after the last process
        try:
            s = flow.connect(address, name, reconnect=False)
            break
        except spread.ConnectionRejected as e:
            if e.code != spread.REJECT_NOT_UNIQUE or time.monotonic() > deadline:
                raise
    with s:
        ch = s.channel(
            group, stream=stream, window=4096, max_inflight=None, retention=DirStore(path)
        )
        print("ready", ch.last_seq, flush=True)
        for line in sys.stdin:
            words = line.split()
            if words[0] == "send":
                first, n = int(words[1]), int(words[2])
                for i in range(first, first + n):
                    ch.send(b"%08d:" % i + b"p" * 92, timeout=10)
                ch.flush(timeout=10)
                print("sent", ch.last_seq, flush=True)
            elif words[0] == "end":
                ch.close(timeout=10)
                print("ended", flush=True)
                return


if __name__ == "__main__":
    _sender(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4], 0), sys.argv[5])
