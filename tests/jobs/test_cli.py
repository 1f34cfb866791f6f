"""The operator's job commands: queue, list and show a job; bad input is a stable code."""

from __future__ import annotations

import json

from ..cli.conftest import run_cli, run_json


def test_jobs_run_list_show_and_scheduled(cli_env: dict[str, str]) -> None:
    run_json(["init"], cli_env)
    job = run_json(["jobs", "run", "sleep", "--params", json.dumps({"seconds": 0})], cli_env)
    assert job["state"] == "queued" and job["params"] == {"seconds": 0, "fail_times": 0}
    listed = run_json(["jobs", "list"], cli_env)
    assert [j["id"] for j in listed] == [job["id"]] and listed[0]["org_id"] is None
    shown = run_json(["jobs", "show", job["id"]], cli_env)
    assert [e["event"] for e in shown["events"]] == ["queued"]
    assert run_json(["scheduled", "rollups"], cli_env)["periods_built"] == {"hour": 0, "day": 0}


def test_bad_job_input_fails_with_a_stable_code(cli_env: dict[str, str]) -> None:
    run_json(["init"], cli_env)
    for args, code in ((["jobs", "run", "mine-bitcoin"], "unknown_job_kind"),
                       (["jobs", "run", "sleep", "--params", '{"seconds": 9999}'], "invalid_job_params"),
                       (["jobs", "show", "job_nope"], "job_not_found")):
        result = run_cli([*args, "--json"], cli_env)
        assert result.returncode == 2 and json.loads(result.stdout)["error"]["code"] == code, result.stdout
