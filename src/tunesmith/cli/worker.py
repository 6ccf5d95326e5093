"""``tunesmith worker``: run queued tuning jobs in the foreground until interrupted."""

from __future__ import annotations

import logging

import typer


def worker(
    concurrency: int = typer.Option(1, "--concurrency", "-n", min=1, help="Jobs at once."),
    executor: str = typer.Option("local", help="local (worker processes here) or ray."),
    ray_address: str = typer.Option(
        None, help="A Ray cluster to run jobs on (default: a private local Ray instance)."
    ),
    cpus_per_job: float = typer.Option(1.0, help="CPUs each job asks Ray for."),
    gpus_per_job: float = typer.Option(0.0, help="GPUs each job asks Ray for."),
) -> None:
    """Claim and run tuning jobs from this TUNESMITH_HOME / TUNESMITH_DATABASE_URL.

    Any number of workers on any machine that reaches the database may run at once; each
    job runs on one of them. SIGTERM / Ctrl-C pause running jobs at a checkpoint and hand
    them back to the queue.
    """
    from ..settings import get_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if executor not in ("local", "ray"):
        raise typer.BadParameter("use 'local' or 'ray'", param_hint="--executor")
    settings = get_settings()
    if executor == "local" and concurrency == 1:
        from ..jobs.worker import main as single_worker

        typer.echo("tunesmith worker: waiting for jobs (Ctrl-C to stop)", err=True)
        single_worker([])
        return
    from ..jobs.pool import run_pool

    typer.echo(f"tunesmith worker: {concurrency} at once on {executor} (Ctrl-C to stop)", err=True)
    run_pool(
        settings,
        concurrency=concurrency,
        executor=executor,
        ray_address=ray_address,
        cpus_per_job=cpus_per_job,
        gpus_per_job=gpus_per_job,
    )


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
