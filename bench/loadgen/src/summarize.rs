//! `loadgen summarize RUNS.jsonl [--meta META.json] [--out RESULT.json]`: medians and
//! min-max over rounds per (target, concurrency), the targets of the benchmark issue as
//! PASS/FAIL, printed as markdown; the raw runs plus the summary written as JSON.

use std::collections::BTreeMap;
use std::process::ExitCode;

use serde_json::{json, Value};

const STATIC: [&str; 2] = ["nginx", "haproxy"];
const CLASSIC: [&str; 2] = ["classic-default", "classic-raised"];
const ORDER: [&str; 5] = [
    "mysqlchk",
    "nginx",
    "haproxy",
    "classic-raised",
    "classic-default",
];
/// mysqlchk's peak RSS must stay below this.
const RSS_LIMIT_KIB: f64 = 20.0 * 1024.0;
/// "A few queries per interval": at most this many queries per second (interval 1 s).
const MAX_QUERIES_PER_S: f64 = 10.0;

fn f(v: &Value, path: &[&str]) -> Option<f64> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_f64()
}

/// Median, min, max (None when empty).
#[derive(Clone, Copy, Debug)]
struct Stat {
    med: f64,
    min: f64,
    max: f64,
    n: usize,
}

fn stat(mut xs: Vec<f64>) -> Option<Stat> {
    xs.retain(|x| x.is_finite());
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = xs.len();
    let med = if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    };
    Some(Stat {
        med,
        min: xs[0],
        max: xs[n - 1],
        n,
    })
}

fn num(x: f64) -> String {
    let a = x.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

fn cell(s: Option<Stat>) -> String {
    match s {
        None => "–".into(),
        Some(s) if s.n == 1 || s.min == s.max => num(s.med),
        Some(s) => format!("{} ({}–{})", num(s.med), num(s.min), num(s.max)),
    }
}

fn stat_json(s: Option<Stat>) -> Value {
    match s {
        None => Value::Null,
        Some(s) => json!({"median": s.med, "min": s.min, "max": s.max, "n": s.n}),
    }
}

/// Per-run derived figures.
struct Derived {
    ok_rps: f64,
    p50: Option<f64>,
    p99: Option<f64>,
    cpu_us: Option<f64>,
    mysqld_us: Option<f64>,
    qps: Option<f64>,
    logins_ps: Option<f64>,
}

fn derive(run: &Value) -> Derived {
    let lg = &run["loadgen"];
    let responses = f(lg, &["responses"]).unwrap_or(0.0);
    let tck = f(run, &["clk_tck"]).unwrap_or(100.0);
    let per_check = |ticks: Option<f64>| {
        ticks
            .filter(|_| responses > 0.0)
            .map(|t| t / tck * 1e6 / responses)
    };
    let window = f(run, &["window_s"]).filter(|w| *w > 0.0);
    Derived {
        ok_rps: f(lg, &["ok_rps"]).unwrap_or(0.0),
        p50: f(lg, &["latency_ms", "p50"]),
        p99: f(lg, &["latency_ms", "p99"]),
        cpu_us: per_check(f(run, &["server_cpu_ticks"])),
        mysqld_us: per_check(f(run, &["mysqld_cpu_ticks"])),
        qps: window.and_then(|w| f(run, &["mysql_questions"]).map(|q| q / w)),
        logins_ps: window.and_then(|w| f(run, &["mysql_connections"]).map(|q| q / w)),
    }
}

struct Group {
    ok_rps: Option<Stat>,
    p50: Option<Stat>,
    p99: Option<Stat>,
    cpu_us: Option<Stat>,
    mysqld_us: Option<Stat>,
    qps: Option<Stat>,
    logins_ps: Option<Stat>,
    /// Outcome counts summed over rounds, other than 200 responses.
    other: BTreeMap<String, u64>,
    responses: u64,
    runs: usize,
}

fn group(runs: &[&Value]) -> Group {
    let d: Vec<Derived> = runs.iter().map(|r| derive(r)).collect();
    let col = |g: &dyn Fn(&Derived) -> Option<f64>| stat(d.iter().filter_map(g).collect());
    let mut other: BTreeMap<String, u64> = BTreeMap::new();
    let mut responses = 0;
    for r in runs {
        let lg = &r["loadgen"];
        responses += lg["responses"].as_u64().unwrap_or(0);
        if let Some(st) = lg["statuses"].as_object() {
            for (k, v) in st {
                if k != "200" {
                    *other.entry(k.clone()).or_insert(0) += v.as_u64().unwrap_or(0);
                }
            }
        }
        if let Some(oc) = lg["outcomes"].as_object() {
            for (k, v) in oc {
                if k != "response" {
                    let n = v.as_u64().unwrap_or(0);
                    if n > 0 {
                        *other.entry(k.clone()).or_insert(0) += n;
                    }
                }
            }
        }
        let deact = r["xinetd_deactivations"].as_u64().unwrap_or(0);
        if deact > 0 {
            *other.entry("xinetd_deactivations".into()).or_insert(0) += deact;
        }
        let left = r["children_left"].as_u64().unwrap_or(0);
        if left > 0 {
            *other.entry("scripts_still_running".into()).or_insert(0) += left;
        }
    }
    Group {
        ok_rps: col(&|x| Some(x.ok_rps)),
        p50: col(&|x| x.p50),
        p99: col(&|x| x.p99),
        cpu_us: col(&|x| x.cpu_us),
        mysqld_us: col(&|x| x.mysqld_us),
        qps: col(&|x| x.qps),
        logins_ps: col(&|x| x.logins_ps),
        other,
        responses,
        runs: runs.len(),
    }
}

fn other_cell(g: &Group) -> String {
    if g.other.is_empty() {
        return "none".into();
    }
    g.other
        .iter()
        .map(|(k, v)| {
            let name = if k.chars().all(|c| c.is_ascii_digit()) {
                format!("HTTP {k}")
            } else {
                k.replace('_', " ")
            };
            format!("{name}: {v}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "PASS",
        Some(false) => "**FAIL**",
        None => "n/a",
    }
}

pub fn main(args: &[String]) -> ExitCode {
    let mut runs_path = None;
    let mut meta_path = None;
    let mut out_path = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--meta" => meta_path = it.next().cloned(),
            "--out" => out_path = it.next().cloned(),
            p if runs_path.is_none() => runs_path = Some(p.to_string()),
            other => {
                eprintln!("loadgen summarize: unexpected argument {other:?}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(runs_path) = runs_path else {
        eprintln!("usage: loadgen summarize RUNS.jsonl [--meta META.json] [--out RESULT.json]");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(&runs_path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("loadgen summarize: {runs_path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut runs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(v) => runs.push(v),
            Err(e) => {
                eprintln!("loadgen summarize: {runs_path}:{}: {e}", i + 1);
                return ExitCode::FAILURE;
            }
        }
    }
    let meta: Value = meta_path
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);

    let mut concs: Vec<u64> = runs
        .iter()
        .filter_map(|r| r["concurrency"].as_u64())
        .collect();
    concs.sort_unstable();
    concs.dedup();
    let mut targets: Vec<String> = Vec::new();
    for t in ORDER {
        if runs.iter().any(|r| r["target"] == t) {
            targets.push(t.to_string());
        }
    }

    let mut groups: BTreeMap<(u64, String), Group> = BTreeMap::new();
    for &c in &concs {
        for t in &targets {
            let sel: Vec<&Value> = runs
                .iter()
                .filter(|r| r["concurrency"].as_u64() == Some(c) && r["target"] == t.as_str())
                .collect();
            if !sel.is_empty() {
                groups.insert((c, t.clone()), group(&sel));
            }
        }
    }

    let mut md = String::new();
    let rounds = runs
        .iter()
        .filter_map(|r| r["round"].as_u64())
        .max()
        .unwrap_or(0);
    md.push_str(&format!(
        "One new TCP connection per check (`GET / HTTP/1.0`), {} s per run, {} interleaved round(s); \
         median (min–max) over rounds. checks/s counts complete `200` responses; latency is over \
         all complete responses; CPU per check is the server's processes (for xinetd: with every \
         script and `mysql` client it forked) over complete responses; MySQL queries/s and \
         logins/s are the server's `Questions` and `Connections` during the run (the bench's \
         own reads excluded) and include mysqlchk's background prober, which runs \
         throughout: the static responders' rows show that baseline.\n\n",
        meta["duration_s"]
            .as_f64()
            .map(|d| if d.fract() == 0.0 { format!("{d:.0}") } else { num(d) })
            .unwrap_or_else(|| "?".into()),
        rounds
    ));
    md.push_str(
        "| conc. | target | checks/s (200) | p50 ms | p99 ms | server CPU µs/check | mysqld CPU µs/check | MySQL queries/s | MySQL logins/s | other outcomes (sum over rounds) |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    let mut groups_json = Vec::new();
    let rank = |t: &str| ORDER.iter().position(|o| *o == t).unwrap_or(ORDER.len());
    let mut ordered: Vec<(&(u64, String), &Group)> = groups.iter().collect();
    ordered.sort_by_key(|((c, t), _)| (*c, rank(t)));
    for ((c, t), g) in ordered {
        md.push_str(&format!(
            "| {c} | {t} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            cell(g.ok_rps),
            cell(g.p50),
            cell(g.p99),
            cell(g.cpu_us),
            cell(g.mysqld_us),
            cell(g.qps),
            cell(g.logins_ps),
            other_cell(g)
        ));
        groups_json.push(json!({
            "target": t, "concurrency": c, "runs": g.runs, "responses": g.responses,
            "ok_rps": stat_json(g.ok_rps), "p50_ms": stat_json(g.p50), "p99_ms": stat_json(g.p99),
            "server_cpu_us_per_check": stat_json(g.cpu_us),
            "mysqld_cpu_us_per_check": stat_json(g.mysqld_us),
            "mysql_queries_per_s": stat_json(g.qps), "mysql_logins_per_s": stat_json(g.logins_ps),
            "other_outcomes": g.other,
        }));
    }

    // Targets, per concurrency, on medians of the same run.
    let get = |c: u64, t: &str| groups.get(&(c, t.to_string()));
    let med = |s: Option<Stat>| s.map(|s| s.med);
    let mut checks = Vec::new();
    md.push_str(
        "\n| conc. | mysqlchk ÷ best static (≥ 0.80) | mysqlchk ÷ best classic (≥ 100×) | mysqlchk p99 ÷ static p99 (≤ 2×) |\n\
         |---:|---|---|---|\n",
    );
    for &c in &concs {
        let chk = get(c, "mysqlchk");
        let best_static = STATIC
            .iter()
            .filter_map(|t| get(c, t).and_then(|g| med(g.ok_rps).map(|v| (*t, v))))
            .max_by(|a, b| a.1.partial_cmp(&b.1).unwrap());
        let best_classic = CLASSIC
            .iter()
            .filter_map(|t| get(c, t).and_then(|g| med(g.ok_rps).map(|v| (*t, v))))
            .max_by(|a, b| a.1.partial_cmp(&b.1).unwrap());
        // The better (lower) p99 of the static responders: the stricter comparison.
        let static_p99 = STATIC
            .iter()
            .filter_map(|t| get(c, t).and_then(|g| med(g.p99).map(|v| (*t, v))))
            .min_by(|a, b| a.1.partial_cmp(&b.1).unwrap());
        let chk_rps = chk.and_then(|g| med(g.ok_rps));
        let chk_p99 = chk.and_then(|g| med(g.p99));

        let r1 = chk_rps.zip(best_static).map(|(m, (t, s))| (m / s, t));
        let v1 = r1.map(|(r, _)| r >= 0.80);
        let r2 = chk_rps
            .zip(best_classic)
            .map(|(m, (t, s))| (if s > 0.0 { m / s } else { f64::INFINITY }, t));
        let v2 = r2.map(|(r, _)| r >= 100.0);
        let r3 = chk_p99.zip(static_p99).map(|(m, (t, s))| (m / s, t));
        let v3 = r3.map(|(r, _)| r <= 2.0);
        let show = |r: Option<(f64, &str)>, v: Option<bool>, suffix: &str| match r {
            None => "n/a".to_string(),
            Some((x, t)) if x.is_infinite() => format!("∞ (vs {t}: 0 checks/s) {}", verdict(v)),
            Some((x, t)) => format!("{}{suffix} (vs {t}) {}", num(x), verdict(v)),
        };
        md.push_str(&format!(
            "| {c} | {} | {} | {} |\n",
            show(r1, v1, ""),
            show(r2, v2, "×"),
            show(r3, v3, "×")
        ));
        checks.push(json!({"concurrency": c,
            "throughput_vs_best_static": r1.map(|x| json!({"ratio": x.0, "vs": x.1, "pass": v1})),
            "throughput_vs_best_classic": r2.map(|x| json!({"ratio": if x.0.is_finite() { json!(x.0) } else { json!("inf") }, "vs": x.1, "pass": v2})),
            "p99_vs_static": r3.map(|x| json!({"ratio": x.0, "vs": x.1, "pass": v3})),
        }));
    }

    let chk_runs: Vec<&Value> = runs.iter().filter(|r| r["target"] == "mysqlchk").collect();
    let hwm = chk_runs
        .iter()
        .filter_map(|r| r["mysqlchk_hwm_kib"].as_f64())
        .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b))));
    let rss_ok = hwm.map(|h| h < RSS_LIMIT_KIB);
    let qps: Vec<(u64, f64, f64)> = chk_runs
        .iter()
        .filter_map(|r| {
            let d = derive(r);
            Some((r["concurrency"].as_u64()?, d.qps?, d.ok_rps))
        })
        .collect();
    let max_qps = qps
        .iter()
        .map(|x| x.1)
        .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b))));
    md.push_str(&format!(
        "\n- mysqlchk peak RSS (VmHWM over the whole run): {} — target < 20 MiB: {}\n",
        hwm.map(|h| format!("{:.1} MiB", h / 1024.0))
            .unwrap_or_else(|| "n/a".into()),
        verdict(rss_ok)
    ));
    // What the checks add: mysqlchk's rows less the background measured while a static
    // responder (which causes no query) was being benchmarked at the same concurrency.
    let mut added = Vec::new();
    let mut per_conc = Vec::new();
    for &c in &concs {
        let Some(g) = get(c, "mysqlchk") else {
            continue;
        };
        let (Some(q), Some(rps)) = (med(g.qps), med(g.ok_rps)) else {
            continue;
        };
        let bg = stat(
            STATIC
                .iter()
                .filter_map(|t| get(c, t).and_then(|g| med(g.qps)))
                .collect(),
        )
        .map(|s| s.med);
        if let Some(bg) = bg {
            added.push(q - bg);
        }
        per_conc.push(format!(
            "c={c}: {} queries/s at {} checks/s{}",
            num(q),
            num(rps),
            bg.map(|b| format!(" (background while the static responders ran: {})", num(b)))
                .unwrap_or_default()
        ));
    }
    let max_added = added
        .iter()
        .cloned()
        .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b))));
    let q_ok = max_qps.map(|m| m <= MAX_QUERIES_PER_S && max_added.is_none_or(|a| a <= 1.0));
    md.push_str(&format!(
        "- MySQL load with mysqlchk: {} — target: at most {} queries/s in every run (interval 1 s) and the checks add at most 1 query/s over the background: {}\n",
        if per_conc.is_empty() { "n/a".into() } else { per_conc.join("; ") },
        MAX_QUERIES_PER_S,
        verdict(q_ok)
    ));
    // Other processes' share of the machine during each run: busy ticks of the whole
    // machine less what the bench's own processes used.
    let cpus = meta["cpus"].as_f64().unwrap_or(2.0);
    let mut disturbed = Vec::new();
    let mut other_fracs = Vec::new();
    for r in &runs {
        let (Some(busy), Some(w)) = (f(r, &["machine_busy_ticks"]), f(r, &["window_s"])) else {
            continue;
        };
        let tck = f(r, &["clk_tck"]).unwrap_or(100.0);
        let ours = f(r, &["server_cpu_ticks"]).unwrap_or(0.0)
            + f(r, &["mysqld_cpu_ticks"]).unwrap_or(0.0)
            + f(r, &["loadgen", "loadgen_cpu_s"]).unwrap_or(0.0) * tck;
        let frac = ((busy - ours) / (w * cpus * tck)).max(0.0);
        other_fracs.push(frac);
        if frac > 0.10 {
            disturbed.push(format!(
                "round {} c={} {} ({:.0}%)",
                r["round"],
                r["concurrency"],
                r["target"].as_str().unwrap_or("?"),
                frac * 100.0
            ));
        }
    }
    if !other_fracs.is_empty() {
        let s = stat(other_fracs.clone()).unwrap();
        md.push_str(&format!(
            "- Other processes' share of the machine during the runs: median {:.1}%, max {:.1}%{}.\n",
            s.med * 100.0,
            s.max * 100.0,
            if disturbed.is_empty() {
                String::new()
            } else {
                format!(
                    "; {} of {} runs above 10% (their figures are less reliable): {}",
                    disturbed.len(),
                    other_fracs.len(),
                    disturbed.join(", ")
                )
            }
        ));
    }
    let classic_503: u64 = runs
        .iter()
        .filter(|r| {
            r["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("classic"))
        })
        .filter_map(|r| r["loadgen"]["status_503"].as_u64())
        .sum();
    let classic_sum = |path: &[&str]| -> u64 {
        runs.iter()
            .filter(|r| {
                r["target"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("classic"))
            })
            .filter_map(|r| f(&r["loadgen"], path))
            .sum::<f64>() as u64
    };
    if targets.iter().any(|t| t.starts_with("classic")) {
        md.push_str(&format!(
            "- The classic script answered {classic_503} false 503s (MySQL was up all along: concurrent checks truncate each other's output file before testing it, and past max_connections logins fail). {} of its {} complete responses ended in a connection reset (it never reads the request), which is why wrk cannot count them.\n",
            classic_sum(&["ended_by", "reset_after_response"]),
            classic_sum(&["responses"]),
        ));
    }
    if let Some(d) = meta["xinetd_default_deactivations"].as_u64() {
        if targets.iter().any(|t| t == "classic-default") {
            md.push_str(&format!(
                "- xinetd with its default `cps = 50 10` stopped the service {d} time(s) for 10 s in the whole run (connections refused meanwhile); with `cps = 100000 1`: {} time(s).\n",
                meta["xinetd_raised_deactivations"].as_u64().unwrap_or(0)
            ));
        }
    }
    if !meta.is_null() {
        md.push_str(&format!(
            "\nMachine: {} × {}, {} GiB, Linux {}; MariaDB {}, nginx {}, HAProxy {}, xinetd {} (scripts run as {}); mysqlchk {}.\n",
            meta["cpus"],
            meta["cpu_model"].as_str().unwrap_or("?"),
            meta["memory_kib"].as_f64().map(|k| format!("{:.0}", k / 1048576.0)).unwrap_or_else(|| "?".into()),
            meta["kernel"].as_str().unwrap_or("?"),
            meta["mariadb"].as_str().unwrap_or("?"),
            meta["nginx"].as_str().unwrap_or("?"),
            meta["haproxy"].as_str().unwrap_or("?"),
            meta["xinetd"].as_str().unwrap_or("?"),
            meta["xinetd_user"].as_str().unwrap_or("?"),
            meta["mysqlchk_git"].as_str().unwrap_or("?"),
        ));
    }
    print!("{md}");

    if let Some(out) = out_path {
        let all = json!({
            "meta": meta,
            "summary": {
                "groups": groups_json,
                "targets": checks,
                "mysqlchk_peak_rss_kib": hwm,
                "rss_pass": rss_ok,
                "mysqlchk_queries_per_s": qps.iter().map(|(c, q, r)| json!({"concurrency": c, "queries_per_s": q, "ok_rps": r})).collect::<Vec<_>>(),
                "mysql_load_pass": q_ok,
                "mysqlchk_queries_added_over_background": added,
                "classic_false_503": classic_503,
                "disturbed_runs": disturbed,
            },
            "markdown": md,
            "runs": runs,
        });
        if let Err(e) = std::fs::write(&out, serde_json::to_string_pretty(&all).unwrap() + "\n") {
            eprintln!("loadgen summarize: cannot write {out}: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
