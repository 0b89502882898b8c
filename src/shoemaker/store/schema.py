"""The SQLite schema and its migrations, keyed on ``PRAGMA user_version``.

A migration is a list of statements that takes the schema from version N-1 to N. Never edit a
migration that has shipped; append a new one.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: the first schema.
    """
    CREATE TABLE generations (
        name          TEXT PRIMARY KEY,
        branch        TEXT NOT NULL,
        base_branch   TEXT NOT NULL,
        state         TEXT NOT NULL,
        cycle         INTEGER NOT NULL DEFAULT 0,
        start_commit  TEXT NOT NULL DEFAULT '',
        reason        TEXT NOT NULL DEFAULT '',
        created_at    REAL NOT NULL,
        updated_at    REAL NOT NULL,
        stopped_at    REAL
    );

    CREATE TABLE tasks (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        generation    TEXT NOT NULL REFERENCES generations(name),
        title         TEXT NOT NULL,
        description   TEXT NOT NULL DEFAULT '',
        state         TEXT NOT NULL,
        priority      INTEGER NOT NULL DEFAULT 0,
        attempts      INTEGER NOT NULL DEFAULT 0,
        reason        TEXT NOT NULL DEFAULT '',
        branch        TEXT NOT NULL DEFAULT '',
        worktree      TEXT NOT NULL DEFAULT '',
        cycle         INTEGER NOT NULL DEFAULT 0,
        source        TEXT NOT NULL DEFAULT 'measure',
        merged_commit TEXT NOT NULL DEFAULT '',
        created_at    REAL NOT NULL,
        updated_at    REAL NOT NULL
    );
    CREATE INDEX tasks_by_generation ON tasks(generation, state);

    CREATE TABLE task_deps (
        task_id     INTEGER NOT NULL REFERENCES tasks(id),
        depends_on  INTEGER NOT NULL REFERENCES tasks(id),
        PRIMARY KEY (task_id, depends_on)
    );

    CREATE TABLE runs (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        generation       TEXT,
        task_id          INTEGER REFERENCES tasks(id),
        phase            TEXT NOT NULL,
        attempt          INTEGER NOT NULL DEFAULT 0,
        prompt           TEXT NOT NULL,
        argv             TEXT NOT NULL,          -- JSON list
        env_names        TEXT NOT NULL,          -- JSON list: names only, never values
        cwd              TEXT NOT NULL,
        pid              INTEGER,
        started_at       REAL NOT NULL,
        ended_at         REAL,
        exit_code        INTEGER,
        ended            TEXT,                   -- 'result' | 'no_result'
        subtype          TEXT,
        is_error         INTEGER,
        ok               INTEGER,
        reason           TEXT NOT NULL DEFAULT '',
        input_tokens     INTEGER NOT NULL DEFAULT 0,
        output_tokens    INTEGER NOT NULL DEFAULT 0,
        cache_creation_input_tokens INTEGER NOT NULL DEFAULT 0,
        cache_read_input_tokens     INTEGER NOT NULL DEFAULT 0,
        cost_usd         REAL NOT NULL DEFAULT 0,
        num_turns        INTEGER,
        session_id       TEXT,
        duration_ms      INTEGER,
        duration_api_ms  INTEGER,
        wall_s           REAL,
        model_usage      TEXT,                   -- JSON of the last result's modelUsage
        result_text      TEXT,
        stderr_tail      TEXT NOT NULL DEFAULT '',
        transcript       BLOB,                   -- zlib-compressed raw stdout
        transcript_lines INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX runs_by_task ON runs(task_id);

    CREATE TABLE gate_results (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id     INTEGER NOT NULL REFERENCES tasks(id),
        run_id      INTEGER REFERENCES runs(id),
        name        TEXT NOT NULL,
        location    TEXT NOT NULL,               -- 'worktree' | 'generation'
        passed      INTEGER NOT NULL,
        exit_code   INTEGER,
        duration_s  REAL NOT NULL,
        output_tail TEXT NOT NULL DEFAULT '',
        created_at  REAL NOT NULL
    );

    CREATE TABLE metrics (
        task_id          INTEGER PRIMARY KEY REFERENCES tasks(id),
        commit_sha       TEXT NOT NULL,
        merge_sha        TEXT NOT NULL,
        files_changed    INTEGER NOT NULL,
        insertions       INTEGER NOT NULL,
        deletions        INTEGER NOT NULL,
        prod_loc_before  INTEGER NOT NULL,
        prod_loc_after   INTEGER NOT NULL,
        test_loc_before  INTEGER NOT NULL,
        test_loc_after   INTEGER NOT NULL,
        duration_s       REAL NOT NULL,
        recorded_at      REAL NOT NULL
    );

    CREATE TABLE events (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        ts          REAL NOT NULL,
        generation  TEXT,
        kind        TEXT NOT NULL,
        task_id     INTEGER,
        data        TEXT NOT NULL
    );
    CREATE INDEX events_by_task ON events(task_id);

    -- The event log is append-only: it is the evidence of what happened.
    CREATE TRIGGER events_no_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
    CREATE TRIGGER events_no_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
    """,
    # 2: how often a task's work conflicted with the generation branch (the merge queue re-runs
    # the agent once, then parks the task).
    """
    ALTER TABLE tasks ADD COLUMN conflicts INTEGER NOT NULL DEFAULT 0;
    """,
    # 3: attempts cut short because shoemaker stopped (a crash, a signal); they are counted as
    # attempts but do not use up max_retries, which is for attempts that failed.
    """
    ALTER TABLE tasks ADD COLUMN interruptions INTEGER NOT NULL DEFAULT 0;
    """,
    # 4: a fingerprint of the last failure, so that a retry that fails the same way stops.
    """
    ALTER TABLE tasks ADD COLUMN fingerprint TEXT NOT NULL DEFAULT '';
    """,
    # 5: plans: measure's proposals held for a person's approval before they run.
    """
    CREATE TABLE plans (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        generation  TEXT NOT NULL REFERENCES generations(name),
        state       TEXT NOT NULL,
        path        TEXT NOT NULL DEFAULT '',
        reason      TEXT NOT NULL DEFAULT '',
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL
    );
    ALTER TABLE tasks ADD COLUMN plan_id INTEGER REFERENCES plans(id);
    """,
    # 6: a run that printed no result line (killed, crashed) still cost money: its tokens are
    # what its messages reported, its cost those tokens at the configured price, marked so.
    """
    ALTER TABLE runs ADD COLUMN cost_estimated INTEGER NOT NULL DEFAULT 0;
    """,
    # 7: tasks imported from plan files (epics, beads issues, measure files): their format,
    # file and id there (the external id a re-import matches on), and what the file says
    # besides the text: review, gates, kept extras (JSON).
    """
    ALTER TABLE tasks ADD COLUMN origin_format TEXT NOT NULL DEFAULT '';
    ALTER TABLE tasks ADD COLUMN origin_path TEXT NOT NULL DEFAULT '';
    ALTER TABLE tasks ADD COLUMN external_id TEXT NOT NULL DEFAULT '';
    ALTER TABLE tasks ADD COLUMN needs_review INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tasks ADD COLUMN plan_gates TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE tasks ADD COLUMN extras TEXT NOT NULL DEFAULT '{}';
    CREATE INDEX tasks_by_external_id ON tasks(generation, origin_format, external_id);
    """,
    # 8: the agent kind each run was launched as (its transcript is read with that kind's
    # parser) and its model (the configured one, then the one its stream named).
    """
    ALTER TABLE runs ADD COLUMN agent_kind TEXT NOT NULL DEFAULT 'claude';
    ALTER TABLE runs ADD COLUMN model TEXT NOT NULL DEFAULT '';
    """,
    # 9: when the provider's rate limit that holds a generation resets: kept across a crash,
    # so that the next run waits for it instead of meeting the limit again.
    """
    ALTER TABLE generations ADD COLUMN rate_limited_until REAL;
    """,
    # 10: the failed attempts before a person's retry (`shoemaker task retry`): the attempts
    # go on numbering runs and branches, while max_retries counts from the retry.
    """
    ALTER TABLE tasks ADD COLUMN failures_before_retry INTEGER NOT NULL DEFAULT 0;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
