"""A virtual microphone: the real ALSA → PortAudio → ``sounddevice`` capture path, no sound card.

How it works
    An ALSA ``type file`` PCM reads its capture samples from ``infile``, which here is a named
    pipe (FIFO). A feeder thread writes into the pipe; PortAudio's capture thread blocks on the
    pipe when it is empty, so the feeder's pace *is* the microphone's pace:

    * ``VirtualMic(paced=False)``: whatever you ``play()`` is delivered as fast as the reader takes
      it, byte-exact, then silence follows in real time (deterministic tests);
    * ``paced_mic()`` / ``VirtualMic(paced=True)``: one block per block period on absolute
      ``time.monotonic`` deadlines — real-time audio for the idle-CPU benchmark. JACK is not
      needed (the ENVIRONMENT.md JACK route also works but needs jackd, a JACK-enabled PortAudio
      host API and shared-memory clean-up); this pace comes from a thread's clock, not a crystal.

The ``.asoundrc`` written into the mic's directory (pointed to by ``HOME``)::

    pcm.testmic { type plug; slave { pcm testmic_file; format S16_LE; rate 16000; channels 1 } }
    pcm.testmic_file { type file; slave.pcm "null"; file "/dev/null"; infile "DIR/testmic.fifo" }

Traps this module handles (each cost an afternoon):

* The file plugin insists on an output ``file`` even for capture ("file is not defined").
* alsa-lib opens ``infile`` with a blocking ``open(O_RDONLY)`` when PortAudio probes devices
  (``import sounddevice``) and again at stream open; a FIFO with no writer would hang both. The
  feeder holds the FIFO ``O_RDWR`` from the start, which never blocks and keeps the pipe alive
  while readers come and go.
* A read that finds fewer bytes than the period PortAudio asked for returns a block whose tail is
  stale memory. So the feeder writes only whole blocks of ``block_frames`` (≤ 4096 bytes, so each
  write is atomic) and the stream's ``blocksize`` must be the same (16 kHz × 100 ms = 1600).
* With the pipe empty, PortAudio's thread sits in ``read()`` and ``stream.stop()`` would hang; the
  feeder therefore writes silence in real time whenever it has nothing else. Stop streams
  *before* closing the mic: after the last writer closes, reads hit end-of-file and PortAudio
  spins through stale data unclocked.
* PortAudio lists devices once, at initialisation: the capturing code must start with ``HOME``
  already set. Run it in a subprocess with ``env=mic.env()`` (what the tests do), or call
  :func:`reinit_portaudio` in-process.

Commands to reproduce by hand (one shell)::

    mkdir -p /tmp/vm && mkfifo /tmp/vm/testmic.fifo
    cat > /tmp/vm/.asoundrc <<'EOF'
    pcm.testmic { type plug; slave { pcm testmic_file; format S16_LE; rate 16000; channels 1 } }
    pcm.testmic_file { type file; slave.pcm "null"; file "/dev/null"
                       infile "/tmp/vm/testmic.fifo" }
    EOF
    exec 3<>/tmp/vm/testmic.fifo           # hold the FIFO open read-write
    HOME=/tmp/vm arecord -L                 # lists testmic
    (while :; do head -c 3200 /dev/zero; sleep 0.1; done) >&3 &   # crude real-time silence
    HOME=/tmp/vm arecord -D testmic -f S16_LE -r 16000 -c 1 -d 3 out.wav

Benchmark use::

    with paced_mic(tmp_dir, idle_audio=room_noise) as mic:
        subprocess.run([sys.executable, "bench/agent_idle.py"], env=mic.env(), check=True)
"""

from __future__ import annotations

import contextlib
import ctypes.util
import fcntl
import os
import stat
import termios
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

DEVICE = "testmic"
_PIPE_BYTES = 1 << 20  # /proc/sys/fs/pipe-max-size is 1 MiB by default
_PIPE_BUF = 4096
_BYTES_PER_FRAME = 2


def unsupported_reason() -> str | None:
    """Why the virtual microphone cannot work on this machine, or None if it can."""
    if ctypes.util.find_library("asound") is None:
        return "ALSA library (libasound2) is not installed"
    if ctypes.util.find_library("portaudio") is None:
        return "PortAudio (libportaudio2) is not installed"
    return None


def asoundrc(fifo: Path, name: str = DEVICE, rate_hz: int = 16000) -> str:
    return (
        f"pcm.{name} {{ type plug; slave {{ pcm {name}_file; format S16_LE; rate {rate_hz}; "
        f"channels 1 }} }}\n"
        f'pcm.{name}_file {{ type file; slave.pcm "null"; file "/dev/null"; infile "{fifo}" }}\n'
    )


class VirtualMic:
    """An ALSA capture device called ``name`` fed from this process (see the module doc).

    >>> mic = VirtualMic(tmp_path)  # doctest: +SKIP
    >>> sent = mic.play(samples)  # doctest: +SKIP
    >>> with mic:  # doctest: +SKIP
    ...     subprocess.run([sys.executable, "capture.py"], env=mic.env())
    """

    def __init__(
        self,
        directory: Path,
        name: str = DEVICE,
        rate_hz: int = 16000,
        block_frames: int = 1600,
        paced: bool = False,
        idle_audio: bytes = b"",
        max_backlog_blocks: int = 2,
    ) -> None:
        self.block_bytes = block_frames * _BYTES_PER_FRAME
        if self.block_bytes > _PIPE_BUF:
            raise ValueError(f"block of {self.block_bytes} bytes would not be written atomically")
        self.directory = Path(directory)
        self.name = name
        self.rate_hz = rate_hz
        self.block_s = block_frames / rate_hz
        self.paced = paced
        self.max_backlog_bytes = max_backlog_blocks * self.block_bytes
        self.fifo = self.directory / f"{name}.fifo"
        self._idle = self._whole_blocks(idle_audio) or bytes(self.block_bytes)
        self._idle_at = 0
        self._pending: deque[bytes] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fd: int | None = None
        self.blocks_written = 0
        self.played = threading.Event()
        """Set when everything passed to ``play`` has been written into the pipe."""
        self.played.set()

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for a subprocess that should see the device (``HOME`` → our dir)."""
        env = dict(os.environ if base is None else base)
        env["HOME"] = str(self.directory)
        return env

    def open(self) -> VirtualMic:
        self.directory.mkdir(parents=True, exist_ok=True)
        if not (self.fifo.exists() and stat.S_ISFIFO(self.fifo.stat().st_mode)):
            os.mkfifo(self.fifo)
        (self.directory / ".asoundrc").write_text(asoundrc(self.fifo, self.name, self.rate_hz))
        self._fd = os.open(self.fifo, os.O_RDWR)
        with contextlib.suppress(OSError):  # a bigger pipe only matters for paced=False bursts
            fcntl.fcntl(self._fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        self._thread = threading.Thread(target=self._feed, name=f"virtual-mic-{self.name}")
        self._thread.daemon = True
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        with contextlib.suppress(FileNotFoundError):
            self.fifo.unlink()

    def __enter__(self) -> VirtualMic:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def play(self, audio: bytes) -> bytes:
        """Queue 16-bit mono ``audio``; returns it as it will arrive (padded to whole blocks).

        Called before ``open()``, the audio is the first thing the device delivers; called later,
        a few blocks of idle audio may come first.
        """
        padded = self._whole_blocks(audio)
        with self._lock:
            self.played.clear()
            self._pending.extend(
                padded[i : i + self.block_bytes] for i in range(0, len(padded), self.block_bytes)
            )
        return padded

    def _whole_blocks(self, audio: bytes) -> bytes:
        short = -len(audio) % self.block_bytes
        return audio + bytes(short)

    def _backlog(self) -> int:
        assert self._fd is not None
        return int.from_bytes(
            fcntl.ioctl(self._fd, termios.FIONREAD, b"\0\0\0\0"), "little", signed=True
        )

    def _next_idle(self) -> bytes:
        block = self._idle[self._idle_at : self._idle_at + self.block_bytes]
        self._idle_at = (self._idle_at + self.block_bytes) % len(self._idle)
        return block

    def _write(self, block: bytes) -> None:
        assert self._fd is not None
        os.write(self._fd, block)
        self.blocks_written += 1

    def _feed(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            if not self.paced:  # content goes in as fast as the pipe takes it
                while self._backlog() + self.block_bytes <= _PIPE_BYTES // 2:
                    with self._lock:
                        block = self._pending.popleft() if self._pending else None
                    if block is None:
                        break
                    self._write(block)
            if self._backlog() < self.max_backlog_bytes:  # someone is reading: keep time
                with self._lock:
                    block = self._pending.popleft() if self._pending else None
                self._write(block if block is not None else self._next_idle())
            with self._lock:
                if not self._pending:
                    self.played.set()
            next_tick += self.block_s
            delay = next_tick - time.monotonic()
            if delay < -1.0:  # fell far behind (machine suspended?): do not burst to catch up
                next_tick = time.monotonic()
            self._stop.wait(max(0.0, delay))


@contextlib.contextmanager
def paced_mic(
    directory: Path,
    audio: bytes = b"",
    idle_audio: bytes = b"",
    rate_hz: int = 16000,
    block_frames: int = 1600,
) -> Iterator[VirtualMic]:
    """A real-time microphone: ``audio`` once, then ``idle_audio`` (default silence) on a loop."""
    mic = VirtualMic(
        directory, rate_hz=rate_hz, block_frames=block_frames, paced=True, idle_audio=idle_audio
    )
    mic.play(audio)  # queued before the feeder starts: it comes first
    with mic:
        yield mic


def reinit_portaudio(mic: VirtualMic) -> None:
    """Make this process's PortAudio see ``mic`` (sets HOME; uses sounddevice's private reinit)."""
    import sounddevice

    os.environ["HOME"] = str(mic.directory)
    sounddevice._terminate()
    sounddevice._initialize()
