"""The browser session: its Experiment, its run lock (and its participant), workshop mode, the widgets that show
config values, and the release of a session's memory when it ends (`SessionReaper`)."""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import logging
import os
import threading
import time
from typing import Any

import cachetools
import streamlit as st
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

from explorer.experiment.facade import Experiment
from ui.participant import identify

EXPERIMENT_KEY = "experiment"
RUN_LOCK_KEY = "_run_lock"

# Every control that shows a config value has a key with one of these prefixes. A key makes the widget's identity
# independent of its default, so the first edit after a submit that changed the config is not lost to a "new" widget.
SETTING_WIDGET_PREFIXES = ("wp_", "freeze_", "act_", "md_", "ft_", "pg_")


def get_experiment() -> Experiment:
    """This browser session's Experiment (created on first use; never shared between sessions)."""
    if EXPERIMENT_KEY not in st.session_state:
        st.session_state[EXPERIMENT_KEY] = Experiment()
    return st.session_state[EXPERIMENT_KEY]


def session_run_lock() -> threading.Lock:
    """One script run at a time per session. Streamlit's fast reruns start the new run in a new thread while the
    interrupted one is still inside engine code; without this lock the stale run could write its (older) slider
    setting into the Experiment after the new run did. The old run stops at its next Streamlit call, so the wait is
    short.

    Taken at the top of every script run (ui/main.py), before anything can train, so it is also where the session
    learns its participant (ui.participant.identify): a fresh browser gets its signed cookie on its first page, and
    the tabs it opens afterwards count as the same participant for the server's fair share of training slots; and
    where the server's SessionReaper learns of the session, to release its memory when it ends."""
    identify()
    SessionReaper.watch()
    return st.session_state.setdefault(RUN_LOCK_KEY, threading.Lock())


_LOG = logging.getLogger(__name__)


def _malloc_trim() -> bool:
    """Hand the C heap's free pages back to the system (glibc's malloc_trim(0)); False where there is no glibc.

    A tensor's memory comes from malloc; once freed, glibc keeps it in the heap of the thread (arena) that freed it,
    and a process's resident memory only ever grew: a trained session of the largest setup left about 250 MB resident
    where its live state was about 145 MB, and closed sessions left it all (benchmarks/bench_session_memory.py)."""
    if _LIBC is None:
        return False
    _LIBC.malloc_trim(0)
    return True


def _glibc():
    """The C library when it is glibc (Linux), else None: elsewhere nothing is trimmed, and memory is released as
    that allocator releases it."""
    try:
        path = ctypes.util.find_library("c")
        libc = ctypes.CDLL(path) if path else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


_LIBC = _glibc()


class _MallInfo2(ctypes.Structure):
    """glibc's struct mallinfo2 (malloc.h, glibc ≥ 2.33): `fordblks` is the free memory its heaps hold."""
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


if _LIBC is not None and hasattr(_LIBC, "mallinfo2"):
    _LIBC.mallinfo2.restype = _MallInfo2


def _heap_free_mb() -> float | None:
    """The free memory glibc's heaps hold (what a trim could return), in MB; None where it cannot say."""
    if _LIBC is None or not hasattr(_LIBC, "mallinfo2"):
        return None
    return _LIBC.mallinfo2().fordblks / 2**20


M_ARENA_MAX, ARENAS = -8, 2  # glibc's mallopt parameter (malloc.h), and the heaps the server's threads share


class SessionReaper:
    """Releases what a session held once it has ended: once per server process, a timer on Streamlit's event loop.

    A closed tab's session state (its Experiment, an upload) sits in reference cycles of Streamlit's session objects,
    which only the cyclic collector's rare full collections free; and the memory then freed stays in the C heap
    (glibc keeps it in the arena of the thread that freed it). Sessions that Streamlit keeps for a reconnect
    (`server.disconnectedSessionTTL`) sit in a TTLCache that expires entries only lazily (when another session
    disconnects) and drops them without shutting them down, so their uploaded files, media and dataframe sources
    stayed registered for good. Measured (issue 29): 200 connects/closes left 0.94 MB each, not released 135 s later;
    two closed sessions of the largest setup left 506 MB (benchmarks/bench_session_memory.py).

    So every REAP_S the reaper expires that storage and shuts each expired session down as Streamlit's own close does
    (on the event loop, where the session manager runs), and once a session it saw (`watch`, at every script run) is
    gone from the server, it empties that session's state (a pending callback of Streamlit's event loop may still
    hold the session object: half of 100 closed sessions' Experiments were alive after a full collection), collects
    the cycles and trims the heap (`malloc_trim`), so the process returns to where it was. It also trims after a
    session's work freed a lot (TRIM_MB free in the heap): a training run's gradients and optimizer state go back to
    the heap when it ends, not to the system.

    Streamlit has no public hook for a session's end, and its session storage is private (`Runtime._session_mgr`, a
    pinned streamlit version). Where that is missing, a session counts as gone TTL seconds after it disconnected; and
    tests/test_session_memory.py, through a real server, fails when the release stops working.
    """

    REAP_S = 1.0
    TRIM_MB = 64
    _instance: SessionReaper | None = None
    _lock = threading.Lock()

    def __init__(self, runtime: Runtime, loop) -> None:
        self.runtime, self.loop = runtime, loop
        self.trimmed_at = _rss_mb()
        self.sessions: dict[str, float | None] = {}  # watched session id -> when it was first seen disconnected
        self.states: dict[str, Any] = {}              # watched session id -> its SessionState, until it is gone
        self.reaped = 0  # sessions seen gone so far

    @classmethod
    def watch(cls) -> None:
        """Watch this script run's session (starting the process's reaper on first use; nothing without a server:
        AppTest, scripts)."""
        ctx = get_script_run_ctx()
        if ctx is None or not Runtime.exists():
            return
        reaper = cls._instance
        if reaper is None:
            with cls._lock:
                if cls._instance is None:
                    cls._instance = cls._start(Runtime.instance())
                reaper = cls._instance
        with cls._lock:
            if ctx.session_id not in reaper.states:  # the state itself: its wrapper is made anew for every run
                reaper.states[ctx.session_id] = getattr(ctx.session_state, "_state", None)
            reaper.sessions.setdefault(ctx.session_id, None)

    @classmethod
    def _start(cls, runtime: Runtime) -> SessionReaper:
        if _LIBC is not None:
            # glibc gives each new thread (a script run, a training) its own heap up to 8 per core, and a heap keeps
            # what its threads freed: two heaps shared by every thread from now on kept 7–15 MB less after 100
            # sessions (MALLOC_ARENA_MAX=2 in the environment does it from the start)
            _LIBC.mallopt(M_ARENA_MAX, ARENAS)
        objs = getattr(runtime, "_get_async_objs", None)
        try:
            loop = objs().eventloop if objs is not None else None
        except Exception:  # (a Streamlit without it: the reaper polls from a thread of its own)
            loop = None
        reaper = cls(runtime, loop)
        if loop is not None:
            loop.call_soon_threadsafe(reaper._tick)
        else:
            threading.Thread(target=reaper._poll, name="session-reaper", daemon=True).start()
        return reaper

    def _poll(self) -> None:
        while not threading.Event().wait(self.REAP_S):
            self.release(self._ended())

    def _tick(self) -> None:
        """On the event loop: shut expired sessions down, release memory, and come back in REAP_S."""
        try:
            self._expire()
            self.release(self._ended())
        except Exception:  # (the reaper must outlive one bad tick; the server goes on either way)
            _LOG.exception("releasing ended sessions failed")
        if not self.loop.is_closed():
            self.loop.call_later(self.REAP_S, self._tick)

    def _expire(self) -> None:
        """Shut down the stored sessions whose disconnected time ran out (Streamlit drops them unannounced)."""
        storage = getattr(getattr(self.runtime, "_session_mgr", None), "_session_storage", None)
        cache = getattr(storage, "_cache", None)
        if isinstance(cache, cachetools.TTLCache):
            for _, info in cache.expire():
                info.session.shutdown()  # its uploaded files, media and dataframe sources, as close does

    def _ended(self) -> int:
        """How many watched sessions are gone from the server since the last tick (forgotten here too)."""
        manager = getattr(self.runtime, "_session_mgr", None)
        known = getattr(manager, "get_session_info", None)
        now, ttl = time.monotonic(), float(st.get_option("server.disconnectedSessionTTL"))
        gone = []
        with self._lock:
            for sid, since in self.sessions.items():
                if self.runtime.is_active_session(sid):
                    self.sessions[sid] = None
                    continue
                self.sessions[sid] = since = now if since is None else since
                if (known(sid) is None) if known is not None else now - since > ttl:
                    gone.append(sid)
            for sid in gone:
                del self.sessions[sid]
                state = self.states.pop(sid, None)
                with contextlib.suppress(Exception):  # (a Streamlit whose state cannot clear: collected as before)
                    state.clear()  # its Experiment goes, whoever still holds the session (see above)
        return len(gone)

    def release(self, ended: int) -> None:
        """After `ended` sessions are gone (or a session's work freed a lot): collect their cycles, trim the heap."""
        if ended:
            self.reaped += ended
            gc.collect()
        else:
            # worth a trim: the heap holds TRIM_MB free (where glibc cannot say, the growth stands in for it) and
            # pages have been touched since the last trim (free pages a trim returned still count as free)
            grown, free = _rss_mb() - self.trimmed_at, _heap_free_mb()
            if (free if free is not None else grown) < self.TRIM_MB or grown < self.TRIM_MB / 4:
                return
        _malloc_trim()
        self.trimmed_at = _rss_mb()


def _rss_mb() -> float:
    """This process's resident memory in MB (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


WORKSHOP_PARAM, WORKSHOP_KEY = "workshop", "_workshop"
LESSON_LOCK_KEY = "_lesson_lock"  # set by ui.lesson when the instructor's link locks the class to a lesson
ON, OFF = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def workshop_mode() -> bool:
    """Workshop mode hides the advanced parts of every page for a class (as TensorFlow Playground does). It is in the
    address (`?workshop=1`), which every page keeps (`ui.links.share_current_setup`): a reload, another page or a
    shared link stays in it. The instructor's switch is on Home (`set_workshop_mode`)."""
    asked = st.query_params.get(WORKSHOP_PARAM, "").lower()
    if asked in ON or (asked in OFF and not st.session_state.get(LESSON_LOCK_KEY)):  # a locked class cannot leave
        st.session_state[WORKSHOP_KEY] = asked in ON
    return bool(st.session_state.get(WORKSHOP_KEY, False))


def set_workshop_mode(on: bool) -> None:
    """The instructor's switch: on or off for this session, and in the address."""
    st.session_state[WORKSHOP_KEY] = on
    st.query_params[WORKSHOP_PARAM] = ON[0] if on else OFF[0]


def forget_setting_widgets() -> None:
    """Drop the widget state of setting controls, so that they show the experiment's config again (after an import)."""
    for key in [k for k in st.session_state if str(k).startswith(SETTING_WIDGET_PREFIXES)]:
        del st.session_state[key]


def seed_widgets(prefix: str, values: dict) -> None:
    """Give each widget `prefix + name` its value from the config, unless the user already set one: the config is the
    source of truth for a first visit and after an import (forget_setting_widgets)."""
    for name, value in values.items():
        st.session_state.setdefault(prefix + name, value)
