# bench/fleet.sh's report: the markdown table of its runs (jq -s, $meta from fleet.sh).
# Median (min-max) over rounds; targets PASS/FAIL per N.
def r3: if . == null then "-" elif . >= 100 then (. | round | tostring)
        elif . >= 10 then ((. * 10 | round) / 10 | tostring)
        else ((. * 1000 | round) / 1000 | tostring) end;
def med: sort | if length == 0 then null else .[(length - 1) / 2 | floor] end;
def cell(f): [.[] | f] as $v | ($v | med | r3) +
    (if ($v | length) > 1 and ($v | min) != ($v | max) then " (\($v | min | r3)–\($v | max | r3))" else "" end);
def mib: . / 1024;

. as $runs
| ($runs | map(select(.kind == "single"))) as $single
| ($runs | map(select(.kind == "fleet")) | group_by(.n)) as $byn
| ($single | map(.questions_per_target_interval) | med) as $q1
| [
  "One mysqlchk (release, `check.interval = 1s`, `timeout = 1s`) watching N targets on \($meta.servers) MariaDB servers (\($meta.mariadb)) over loopback aliases; \($meta.rounds) round(s), median (min–max). Quiet window \($meta.window_s) s without requests: CPU of mysqlchk (% of one core), VmRSS / VmHWM at its end, threads, MySQL `Questions` per target per interval on the fleet servers. Age window \($meta.window_s) s: every target's snapshot `age_seconds` from `/status` sampled every \($meta.age_every_ms) ms. Checks/s: bench/loadgen, one connection per check, concurrency \($meta.loadgen_concurrency), \($meta.loadgen_duration_s) s, `GET /` with an `X-Haproxy-Server-State` header naming the last target, against a single-target checker (no `[[target]]`) in the same round.",
  "",
  "| N | CPU % | VmRSS MiB | VmHWM MiB | threads | queries/target/interval | age p50 s | age p99 s | age max s | checks/s fleet (header) | checks/s single | fleet ÷ single |",
  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ("| single | \($single | cell(.cpu_pct)) | \($single | cell(.rss_kib | mib)) | \($single | cell(.hwm_kib | mib)) | \($single | cell(.threads)) | \($single | cell(.questions_per_target_interval)) | | | | | | |"),
  ($byn[] | "| \(.[0].n) | \(cell(.cpu_pct)) | \(cell(.rss_kib | mib)) | \(cell(.hwm_after_load_kib | mib)) | \(cell(.threads)) | \(cell(.questions_per_target_interval)) | \(cell(.ages.age_seconds.p50)) | \(cell(.ages.age_seconds.p99)) | \(cell(.ages.age_seconds.max)) | \(cell(.loadgen_fleet.ok_rps)) | \(cell(.loadgen_single.ok_rps)) | \(cell(.loadgen_fleet.ok_rps / .loadgen_single.ok_rps)) |"),
  "",
  ($byn[] | . as $g | ($g | map(.hwm_after_load_kib) | max) as $hwm
    | ($g | map(.ages.age_seconds.p99) | max) as $p99
    | ($g | map(.loadgen_fleet.ok_rps / .loadgen_single.ok_rps)) as $ratios
    | ($g | map(.questions_per_target_interval) | med) as $q
    | "- N=\($g[0].n): peak RSS \($hwm | mib | r3) MiB (≤ 64: \(if $hwm <= 65536 then "PASS" else "FAIL" end)); worst-round age p99 \($p99 | r3) s (≤ interval + timeout = 2 s: \(if $p99 <= 2 then "PASS" else "FAIL" end)); fleet ÷ single median \($ratios | med | r3) (≥ 0.90: \(if ($ratios | med) >= 0.9 then "PASS" else "FAIL" end); worst round \($ratios | min | r3)); \($q | r3) queries/target/interval vs \($q1 | r3) single (\(if ($q - $q1 | fabs) <= 0.1 * $q1 then "unchanged: PASS" else "FAIL" end)); \($g | map(.ages.without_snapshot) | add) target-samples without a snapshot; /status fetch p50 \($g | map(.ages.fetch_ms.p50) | med | r3) ms; waited \($g | map(.idle_waited_s) | add) s in all for the machine to be idle."),
  "",
  "Command: `\($meta.command)` on \($meta.cpus) × \($meta.cpu_model), Linux \($meta.kernel); mysqlchk \($meta.mysqlchk_git)."
] | join("\n")
