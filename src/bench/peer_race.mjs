// graphile-worker side of `bench all`'s race (see src/bench/peer.rs). Modes:
//   default <url> <n> <concurrency>  run() with its defaults but `concurrency`; the clock
//                                    covers one add_jobs call of N no-op jobs and the drain
//   enqueue <url> <n>                migrations, then one add_jobs call of N no-op jobs
//                                    (N = 0: migrations only)
//   once <url> <concurrency> <local-queue> <batch-ms>
//                                    runOnce() with the given perf-test settings, exits
//                                    when no job is runnable (one of the parallel workers)
import { run, runOnce, runMigrations, Logger } from "graphile-worker";
import pg from "pg";

const [mode, connectionString, ...rest] = process.argv.slice(2);
// Warnings and errors only; ours runs without a log subscriber in its benchmarks.
const logger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") console.error(message);
});
const taskList = { noop: async () => {} };

// One add_jobs call, the rows built on the server (their perf test sends them as JSON).
async function addJobs(pool, n) {
  await pool.query(
    `select 1 from graphile_worker.add_jobs(array(
       select json_populate_record(null::graphile_worker.job_spec,
         json_build_object('identifier', 'noop', 'payload', json_build_object('id', i)))
       from generate_series(1, $1::int) i))`,
    [n],
  );
}

async function empty(pool) {
  const r = await pool.query(
    "select not exists(select 1 from graphile_worker._private_jobs) as e",
  );
  return r.rows[0].e;
}

if (mode === "default") {
  const n = Number(rest[0]), concurrency = Number(rest[1]);
  await runMigrations({ connectionString, logger });
  const pool = new pg.Pool({ connectionString, max: 1 });
  const runner = await run({
    connectionString, concurrency, noHandleSignals: true, logger, taskList,
  });
  const t0 = performance.now();
  await addJobs(pool, n);
  // Checked every 1% of the elapsed time (at least 25 ms), as our drain is.
  while (!(await empty(pool))) {
    const every = Math.max(25, (performance.now() - t0) / 100);
    await new Promise((res) => setTimeout(res, every));
  }
  const seconds = (performance.now() - t0) / 1000;
  await runner.stop();
  await pool.end();
  console.log(JSON.stringify({ seconds }));
} else if (mode === "enqueue") {
  await runMigrations({ connectionString, logger });
  const pool = new pg.Pool({ connectionString, max: 1 });
  if (Number(rest[0]) > 0) await addJobs(pool, Number(rest[0]));
  await pool.end();
} else if (mode === "once") {
  const [concurrency, size, batchMs] = rest.map(Number);
  await runOnce({
    noHandleSignals: true,
    logger,
    taskList,
    preset: {
      worker: {
        connectionString,
        concurrentJobs: concurrency,
        maxPoolSize: concurrency + 1,
        localQueue: { size, refetchDelay: { durationMs: 10 } },
        completeJobBatchDelay: batchMs,
        failJobBatchDelay: batchMs,
      },
    },
  });
} else {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
