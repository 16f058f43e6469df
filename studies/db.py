"""The study server's state in SQLite: participants, sessions, assignments, answers and attention checks.

One file (``study.sqlite`` in the study folder) in WAL mode with ``synchronous=FULL``: a submission is one
transaction, so after a crash it is either wholly there or not at all. Timings are the server's clock only. The
schema itself enforces what must never happen: ``UNIQUE (participant, hit_id)`` keeps a participant from holding two
assignments of one HIT, and an assignment is submitted by one ``UPDATE ... WHERE submitted_at IS NULL``, so a
replayed form changes nothing.
"""
from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DB_FILE = "study.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hits (hit_id TEXT PRIMARY KEY, position INTEGER NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS participants (
    id TEXT PRIMARY KEY, source TEXT NOT NULL CHECK (source IN ('lab', 'prolific')), created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, participant TEXT NOT NULL REFERENCES participants (id),
    prolific_study TEXT, prolific_session TEXT UNIQUE, started_at REAL NOT NULL, finished_at REAL,
    outcome TEXT CHECK (outcome IN ('completed', 'failed_check')));
CREATE TABLE IF NOT EXISTS assignments (
    id TEXT PRIMARY KEY, hit_id TEXT NOT NULL REFERENCES hits (hit_id),
    participant TEXT NOT NULL REFERENCES participants (id), session TEXT NOT NULL REFERENCES sessions (id),
    issued_at REAL NOT NULL, submitted_at REAL, UNIQUE (participant, hit_id));
CREATE TABLE IF NOT EXISTS answers (
    assignment TEXT NOT NULL REFERENCES assignments (id), trial INTEGER NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (assignment, trial));
CREATE TABLE IF NOT EXISTS checks (
    assignment TEXT NOT NULL REFERENCES assignments (id), position INTEGER NOT NULL, expected TEXT NOT NULL,
    answer TEXT, PRIMARY KEY (assignment, position));
"""
SIDES = ("left", "right")


class StateError(ValueError):
    """The database belongs to another export of the study, or a request names a session it does not hold."""


@dataclass(frozen=True)
class Session:
    id: str
    participant: str
    prolific: bool
    finished: bool
    outcome: str | None


@dataclass(frozen=True)
class Assignment:
    id: str
    hit_id: str
    checks: tuple[str, ...]  # the side each attention check asks for, by position


def another_export(path: Path) -> StateError:
    return StateError(f"{path} holds the answers of another export of this study (its hits.csv changed); move it "
                      "away or use the study it belongs to")


def new_token() -> str:
    """An unguessable id of hex digits: it goes into a path or a Location header as it is, and no spreadsheet reads
    it as a formula."""
    return secrets.token_hex(16)


class StudyDB:
    """One connection, used under a lock: every method is a short transaction, so the server never interleaves
    two of them (SQLite writes one at a time in any case)."""

    def __init__(self, path: Path, hit_ids: Sequence[str], fingerprint: str) -> None:
        """Open (or create) the database for the study whose hits.csv has ``fingerprint``; a database made for
        another hits.csv is refused, since its assignments would name other HITs."""
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute("PRAGMA busy_timeout=10000")
        self._conn.executescript(SCHEMA)
        with self.transaction() as c:
            row = c.execute("SELECT value FROM meta WHERE key = 'hits_sha256'").fetchone()
            if row is None:
                c.execute("INSERT INTO meta VALUES ('hits_sha256', ?)", (fingerprint,))
                c.executemany("INSERT INTO hits VALUES (?, ?)", [(h, i) for i, h in enumerate(hit_ids)])
            elif row[0] != fingerprint:
                raise another_export(self.path)

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT under the lock; any exception rolls everything back."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def start_session(self, participant: str, source: str, prolific_study: str | None = None,
                      prolific_session: str | None = None) -> str:
        """A session for ``participant`` (created on first sight); a Prolific SESSION_ID seen before gives its
        session back, so reloading the study URL resumes rather than starts over. StateError (nothing written)
        when the SESSION_ID is another participant's, or the ID came first through the other entry (lab or
        Prolific): its answers would be recorded under a source they did not come from."""
        now = time.time()
        with self.transaction() as c:
            c.execute("INSERT OR IGNORE INTO participants VALUES (?, ?, ?)", (participant, source, now))
            known = c.execute("SELECT source FROM participants WHERE id = ?", (participant,)).fetchone()[0]
            if known != source:
                raise StateError(f"participant {participant} takes part through {known}, not {source}")
            if prolific_session is not None:
                row = c.execute("SELECT id, participant FROM sessions WHERE prolific_session = ?",
                                (prolific_session,)).fetchone()
                if row is not None:
                    if row[1] != participant:
                        raise StateError(f"Prolific session {prolific_session} belongs to another participant")
                    return row[0]
            token = new_token()
            c.execute("INSERT INTO sessions (id, participant, prolific_study, prolific_session, started_at) "
                      "VALUES (?, ?, ?, ?, ?)", (token, participant, prolific_study, prolific_session, now))
            return token

    def session(self, token: str) -> Session | None:
        with self.transaction() as c:
            row = c.execute("SELECT id, participant, prolific_session IS NOT NULL, finished_at IS NOT NULL, outcome "
                            "FROM sessions WHERE id = ?", (token,)).fetchone()
        return Session(row[0], row[1], bool(row[2]), bool(row[3]), row[4]) if row else None

    def _checks(self, c: sqlite3.Connection, assignment: str) -> tuple[str, ...]:
        rows = c.execute("SELECT expected FROM checks WHERE assignment = ? ORDER BY position", (assignment,))
        return tuple(r[0] for r in rows)

    def next_assignment(self, session: Session, quota: int, n_checks: int, lease_s: float) -> Assignment | None:
        """The participant's open assignment (a reload shows the same HIT, timed from its first showing), else a
        new one of the least-assigned HIT they have not had; None when they are done (quota reached, 0: no quota,
        or no HIT left), and then the session is finished with its outcome. A HIT's load counts its submitted
        assignments and those shown in the last ``lease_s`` seconds: one a participant abandoned (a Prolific
        return or time-out) stops holding its HIT back from others then, though its holder may still submit it."""
        with self.transaction() as c:
            row = c.execute("SELECT id, hit_id FROM assignments WHERE participant = ? AND submitted_at IS NULL "
                            "ORDER BY issued_at LIMIT 1", (session.participant,)).fetchone()
            if row is not None:  # resumed, perhaps in a new session (a lab participant who typed their ID again)
                c.execute("UPDATE assignments SET session = ? WHERE id = ?", (session.id, row[0]))
                return Assignment(row[0], row[1], self._checks(c, row[0]))
            done = c.execute("SELECT COUNT(*) FROM assignments WHERE participant = ?",
                             (session.participant,)).fetchone()[0]
            hit = None if quota and done >= quota else c.execute(
                "SELECT h.hit_id FROM hits h LEFT JOIN assignments a ON a.hit_id = h.hit_id "
                "AND (a.submitted_at IS NOT NULL OR a.issued_at > ?) "
                "WHERE h.hit_id NOT IN (SELECT hit_id FROM assignments WHERE participant = ?) "
                "GROUP BY h.hit_id ORDER BY COUNT(a.id), h.position LIMIT 1",
                (time.time() - lease_s, session.participant)).fetchone()
            if hit is None:
                self._finish(c, session)
                return None
            token, now = new_token(), time.time()
            c.execute("INSERT INTO assignments (id, hit_id, participant, session, issued_at) VALUES (?, ?, ?, ?, ?)",
                      (token, hit[0], session.participant, session.id, now))
            checks = tuple(secrets.choice(SIDES) for _ in range(n_checks))
            c.executemany("INSERT INTO checks (assignment, position, expected) VALUES (?, ?, ?)",
                          [(token, j, side) for j, side in enumerate(checks)])
            return Assignment(token, hit[0], checks)

    def _finish(self, c: sqlite3.Connection, session: Session) -> None:
        """Close the session once, its outcome set by every attention check the participant answered, in this
        session or an earlier one: a new SESSION_ID (or the lab form) does not wash out a failed check."""
        failed = c.execute("SELECT COUNT(*) FROM checks k JOIN assignments a ON a.id = k.assignment "
                           "WHERE a.participant = ? AND k.answer IS NOT k.expected AND a.submitted_at IS NOT NULL",
                           (session.participant,)).fetchone()[0]
        c.execute("UPDATE sessions SET finished_at = ?, outcome = ? WHERE id = ? AND finished_at IS NULL",
                  (time.time(), "failed_check" if failed else "completed", session.id))

    def assignment(self, session: Session, token: str) -> tuple[Assignment, bool] | None:
        """The assignment ``token`` of this session and whether it is already submitted; None when it is not one."""
        with self.transaction() as c:
            row = c.execute("SELECT hit_id, submitted_at IS NOT NULL FROM assignments WHERE id = ? AND session = ?",
                            (token, session.id)).fetchone()
            return (Assignment(token, row[0], self._checks(c, token)), bool(row[1])) if row else None

    def submit(self, assignment: str, answers: dict[int, str], checks: Sequence[str]) -> bool:
        """Record one submission in one transaction; False (and nothing written) when it was submitted before."""
        with self.transaction() as c:
            cur = c.execute("UPDATE assignments SET submitted_at = ? WHERE id = ? AND submitted_at IS NULL",
                            (time.time(), assignment))
            if cur.rowcount != 1:
                return False
            c.executemany("INSERT INTO answers VALUES (?, ?, ?)", [(assignment, i, v) for i, v in answers.items()])
            c.executemany("UPDATE checks SET answer = ? WHERE assignment = ? AND position = ?",
                          [(v, assignment, j) for j, v in enumerate(checks)])
            return True


def read_all(path: Path, fingerprint: str) -> dict[str, list[sqlite3.Row]]:
    """Every submitted assignment with its participant and session, every answer and check, for the exports (read
    only: the server may go on running). StateError when the database was made for another hits.csv than the one
    with ``fingerprint``: its answers would be joined with HITs and a key they were not given for."""
    conn = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'hits_sha256'").fetchone()
        if row is None or row[0] != fingerprint:
            raise another_export(path)
        return {
            "assignments": conn.execute(
                "SELECT a.id, a.hit_id, a.participant, p.source, a.session, s.prolific_study, s.prolific_session, "
                "a.issued_at, a.submitted_at FROM assignments a JOIN participants p ON p.id = a.participant "
                "JOIN sessions s ON s.id = a.session WHERE a.submitted_at IS NOT NULL "
                "ORDER BY a.submitted_at, a.id").fetchall(),
            "answers": conn.execute("SELECT assignment, trial, value FROM answers "
                                    "ORDER BY assignment, trial").fetchall(),
            "checks": conn.execute("SELECT assignment, position, expected, answer FROM checks "
                                   "ORDER BY assignment, position").fetchall(),
        }
    finally:
        conn.close()
