#!/usr/bin/env bash
# The timing-sensitive tests under load: start CPU-burning processes beside them, run them N times in a row,
# print how many runs passed; exit 0 only if every run passed. Their faults come at deterministic points
# (tests/faults: a trial pauses after an epoch until the test has acted), so load should only slow them.
# The burners end by themselves after STRESS_SECONDS and are killed when this script exits (only the
# processes it started). Run it as root, like CI: the host-loss and GPU tests need network namespaces.
#
#   tests/stress.sh                     # 5 runs of every timing-sensitive test (kill -9, Ctrl-C, host loss, a
#                                       # retried trial, trials at once, a rerun and an object-store study killed,
#                                       # overhead)
#   tests/stress.sh 5 tests/study/test_study_ray.py::test_two_host_cluster_runs_on_both_hosts_and_survives_losing_one
#   STRESS_BURNERS=2 tests/stress.sh 3  # two busy processes (default 1)
#
# On a shared machine, `nice -n 10 tests/stress.sh ...` keeps the load (tests and burners alike) off others' work.
set -uo pipefail
cd "$(dirname "$0")/.."

runs="${1:-5}"
shift $(($# > 0 ? 1 : 0))
tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
    tests=(
        tests/study/test_study_ray.py::test_smoke_study_on_loopback_only_with_a_retried_trial
        tests/study/test_study_ray.py::test_study_lifecycle_ctrl_c_resume_sigkill_resume
        tests/study/test_study_ray.py::test_four_trials_share_one_logical_gpu
        tests/study/test_study_ray.py::test_two_host_cluster_runs_on_both_hosts_and_survives_losing_one
        tests/study/test_rerun.py::test_killed_rerun_continues_with_resume
        tests/study/test_object_store.py::test_study_on_s3_survives_a_killed_driver_and_reports_from_the_uri
        tests/study/test_study_overhead.py::test_study_overhead_smoke_prints_the_split
    )
fi
python="${PYTHON:-.venv/bin/python}"
burners="${STRESS_BURNERS:-1}"
limit="${STRESS_SECONDS:-7200}"

pids=()
stop_burners() {
    [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null
    wait "${pids[@]}" 2>/dev/null
}
trap stop_burners EXIT
trap 'exit 130' INT TERM
for _ in $(seq "$burners"); do
    timeout "$limit" "$python" -c 'while True: pass' &
    pids+=($!)
done
echo "stress: ${burners} CPU burner(s) (pids ${pids[*]}, at most ${limit} s); ${runs} runs of: pytest ${tests[*]}"

passed=0
for i in $(seq "$runs"); do
    t0=$SECONDS
    if "$python" -m pytest -q -p no:cacheprovider "${tests[@]}"; then
        passed=$((passed + 1))
        echo "stress: run $i/$runs passed ($((SECONDS - t0)) s)"
    else
        echo "stress: run $i/$runs FAILED ($((SECONDS - t0)) s)"
    fi
done
echo "stress: ${passed}/${runs} runs passed under load"
[ "$passed" -eq "$runs" ]
