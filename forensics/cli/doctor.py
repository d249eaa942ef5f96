from __future__ import annotations

from forensics.cli.common import DockerHost, Json, NoEngine, Root, emit_json, host_context


def doctor(
    json: Json = False, root: Root = None, docker_host: DockerHost = None, no_engine: NoEngine = False
) -> None:
    """What this run can see and use: host root, docker data, engine, tools, capabilities."""
    from forensics.host.doctor import examine

    report = examine(host_context(root, docker_host, no_engine))
    if json:
        emit_json(report)
    else:
        from forensics.report import terminal

        terminal.doctor(report)
