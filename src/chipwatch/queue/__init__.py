"""Workers on many hosts: the poll, classify and digest stages as jobs of a PostgreSQL
task queue (Procrastinate), so that N workers on M hosts share the work and none of it is
done twice.

- `app`: the Procrastinate app built from the settings, its tasks and their locks;
- `tasks`: what a job does (one feed, one batch of article ids, one recipient's digest
  for one schedule slot, the outbox's retries, the schedule's tick), reusing the stages;
- `worker`: `chipwatch worker` (the jobs, the schedule, recovery of dead workers' jobs);
- `client`: `chipwatch poll --wait` and `chipwatch queue` (defer, wait, report).
Jobs carry ids and times, never bodies or local paths. SQLite has no queue: `chipwatch
run` keeps the single-process scheduler there.
"""
