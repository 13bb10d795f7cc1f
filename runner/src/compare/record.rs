//! What one guest run measured: parsed from the guest's `RESULT {json}` line and the runner's
//! `--report` file.

use serde_json::{Value, json};

/// One task's line in the result.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRecord {
    pub name: String,
    pub status: i64,
    /// Work start and end (workload tasks only), in the guest's TSC clock.
    pub span_ns: Option<(u64, u64)>,
    pub result: Option<u64>,
    pub pages_touched: u64,
    pub pages_verified: u64,
}

impl TaskRecord {
    pub fn duration_ns(&self) -> Option<u64> {
        self.span_ns.map(|(start, end)| end.saturating_sub(start))
    }
}

/// One run of a scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRecord {
    pub tasks: Vec<TaskRecord>,
    /// From the first workload task's start to the last one's end.
    pub makespan_ns: u64,
    pub pages_touched: u64,
    pub pages_verified: u64,
    /// Pages the runner's lazy memory served.
    pub faults_served: u64,
    /// How many faults the runner's lazy memory had in flight; `None` without its report
    /// (the EL2 host serves pages inside QEMU and does not count this).
    pub in_flight: Option<InFlight>,
    /// Async PF events the guest counted (absent from its result while it has none).
    pub apf_not_present: u64,
    pub apf_ready: u64,
    /// Our async PF host's counters: the VMM's (modes `vmm` and `adaptive`) or the EL2
    /// host's (mode `el2`).
    pub user_apf: Option<UserApf>,
    /// The post-copy migration the run went through (`compare --vmm qemu`).
    pub migration: Option<Migration>,
}

/// What `runner migrate` reported of its migration (its report's `migration` object); the
/// whole object is kept for `compare --json`.
#[derive(Clone, Debug, PartialEq)]
pub struct Migration {
    /// Pages the destination asked the source for: the faults post-copy served on demand.
    pub postcopy_requests: u64,
    /// From `migrate` to completion.
    pub total_ms: u64,
    /// The guest's pause at the switch (source STOP to destination RESUME).
    pub switchover_us: u64,
    /// The destination's vCPUs' time blocked on missing pages.
    pub blocktime_ms: u64,
    pub raw: Value,
}

impl Migration {
    fn parse(report: &Value) -> Result<Option<Self>, Error> {
        let raw = &report["migration"];
        if raw.is_null() {
            return Ok(None);
        }
        let count = |key: &'static str, path: &'static str| {
            raw[key].as_u64().ok_or(Error::ReportMissing(path))
        };
        Ok(Some(Migration {
            postcopy_requests: count("postcopy_requests", "migration.postcopy_requests")?,
            total_ms: count("total_time_ms", "migration.total_time_ms")?,
            switchover_us: count("switchover_us", "migration.switchover_us")?,
            blocktime_ms: count("blocktime_ms", "migration.blocktime_ms")?,
            raw: raw.clone(),
        }))
    }
}

/// From the lazy memory report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InFlight {
    /// Most faults queued or being fetched at once (`max_in_flight`).
    pub max: u64,
    /// Every fault's wait from its message to its page being installed, summed.
    pub total_wait_ns: u64,
}

/// Our async PF host's counts: the run report's `user_apf` (the VMM) or `el2_host` object,
/// read tolerantly: a counter it lacks counts as 0, and the whole object is kept for
/// `compare --json`, under the same name.
#[derive(Clone, Debug, PartialEq)]
pub struct UserApf {
    /// "Page not present" events delivered.
    pub injected: u64,
    /// "Page ready" events delivered, broadcasts included.
    pub ready: u64,
    /// Faults served synchronously, whatever the reason.
    pub sync: u64,
    pub raw: Value,
    pub host: Host,
}

/// Which of our hosts counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    /// The x86 VMM's async PF host (`user_apf`).
    Vmm,
    /// The arm64 EL2 host (`el2_host`).
    El2,
}

impl Host {
    /// The run report's key for this host's object, and the host's names for the
    /// not-present (injected), page-ready and synchronous counts: the EL2 host's SDEI
    /// not-present events are the injected ones, its PPIs the ready ones.
    fn keys(self) -> [&'static str; 4] {
        match self {
            Host::Vmm => ["user_apf", "injected", "ready", "sync"],
            Host::El2 => ["el2_host", "not_present", "page_ready", "sync_faults"],
        }
    }
}

impl UserApf {
    /// `host`'s counts from the run `report`; `None` for a null or absent object (modes
    /// `off` and `kvm`, or the other host's run).
    fn parse(report: &Value, host: Host) -> Option<Self> {
        let [key, injected, ready, sync] = host.keys();
        let raw = &report[key];
        let object = raw.as_object()?;
        // A count, or an object of counts by reason (the VMM's `sync`) summed.
        let count = |key: &str| match object.get(key) {
            Some(Value::Object(reasons)) => reasons.values().filter_map(Value::as_u64).sum(),
            other => other.and_then(Value::as_u64).unwrap_or(0),
        };
        Some(UserApf {
            injected: count(injected),
            ready: count(ready),
            sync: count(sync),
            raw: raw.clone(),
            host,
        })
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("the guest printed no RESULT line")]
    NoResult,
    #[error("the guest's RESULT line is not JSON: {0}")]
    NotJson(String),
    #[error("the guest's RESULT line lacks {0}")]
    Missing(&'static str),
    #[error("no workload task reported its times")]
    NoTimedTask,
    #[error("the runner's report lacks {0}")]
    ReportMissing(&'static str),
}

const RESULT_PREFIX: &str = "RESULT ";

/// Parses a run from the guest console output and the runner's report.
pub fn parse(console: &str, report: &Value) -> Result<RunRecord, Error> {
    let line = console
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(RESULT_PREFIX))
        .ok_or(Error::NoResult)?;
    let result: Value = serde_json::from_str(line).map_err(|e| Error::NotJson(e.to_string()))?;
    let tasks = result["tasks"]
        .as_array()
        .ok_or(Error::Missing("tasks"))?
        .iter()
        .map(task)
        .collect::<Result<Vec<_>, _>>()?;
    let spans = tasks.iter().filter_map(|t| t.span_ns);
    let start = spans
        .clone()
        .map(|(s, _)| s)
        .min()
        .ok_or(Error::NoTimedTask)?;
    let end = spans.map(|(_, e)| e).max().ok_or(Error::NoTimedTask)?;
    let count = |key: &'static str| result[key].as_u64().ok_or(Error::Missing(key));
    let lazy = |key: &'static str, path: &'static str| {
        report["lazy"][key]
            .as_u64()
            .ok_or(Error::ReportMissing(path))
    };
    let user_apf = UserApf::parse(report, Host::Vmm).or_else(|| UserApf::parse(report, Host::El2));
    let migration = Migration::parse(report)?;
    // Through a migration, the pages post-copy requested. Without a lazy memory report, the
    // EL2 host's count (each lazy page it served went synchronously or as not-present), and
    // without that (the guest never enabled async PF, so the host printed none) the guest's
    // touched pages: each was served once.
    let faults_served = match (&report["lazy"], &user_apf) {
        _ if let Some(migration) = &migration => migration.postcopy_requests,
        (Value::Null, Some(el2)) if el2.host == Host::El2 => el2.injected + el2.sync,
        (Value::Null, _) => count("pages_touched")?,
        _ => lazy("served_pages", "lazy.served_pages")?,
    };
    let in_flight = match &report["lazy"] {
        Value::Null => None,
        _ => Some(InFlight {
            max: lazy("max_in_flight", "lazy.max_in_flight")?,
            total_wait_ns: lazy("total_wait_ns", "lazy.total_wait_ns")?,
        }),
    };
    Ok(RunRecord {
        makespan_ns: end.saturating_sub(start),
        pages_touched: count("pages_touched")?,
        pages_verified: count("pages_verified")?,
        faults_served,
        in_flight,
        apf_not_present: result["apf"]["not_present"].as_u64().unwrap_or(0),
        apf_ready: result["apf"]["ready"].as_u64().unwrap_or(0),
        user_apf,
        migration,
        tasks,
    })
}

fn task(t: &Value) -> Result<TaskRecord, Error> {
    let span = match (t["start_ns"].as_u64(), t["end_ns"].as_u64()) {
        (Some(start), Some(end)) => Some((start, end)),
        _ => None,
    };
    Ok(TaskRecord {
        name: t["name"]
            .as_str()
            .ok_or(Error::Missing("task name"))?
            .to_owned(),
        status: t["status"].as_i64().ok_or(Error::Missing("task status"))?,
        span_ns: span,
        result: t["result"].as_u64(),
        pages_touched: t["pages_touched"].as_u64().unwrap_or(0),
        pages_verified: t["pages_verified"].as_u64().unwrap_or(0),
    })
}

impl RunRecord {
    /// The task named `name`, if the run had one.
    pub fn task(&self, name: &str) -> Option<&TaskRecord> {
        self.tasks.iter().find(|t| t.name == name)
    }

    /// Faults served per second of makespan.
    pub fn faults_per_s(&self) -> f64 {
        self.faults_served as f64 * 1e9 / self.makespan_ns.max(1) as f64
    }

    /// Mean faults in flight over the makespan, by Little's law: the faults' summed wait
    /// over the time they were spread across.
    pub fn mean_in_flight(&self) -> Option<f64> {
        let in_flight = self.in_flight?;
        Some(in_flight.total_wait_ns as f64 / self.makespan_ns.max(1) as f64)
    }

    /// The run report's object from `host`, if that host counted.
    fn host_counts(&self, host: Host) -> Option<&Value> {
        self.user_apf
            .as_ref()
            .filter(|u| u.host == host)
            .map(|u| &u.raw)
    }

    /// The JSON form used in `compare --json`.
    pub fn to_json(&self) -> Value {
        json!({
            "makespan_ns": self.makespan_ns,
            "tasks": self.tasks.iter().map(|t| json!({
                "name": t.name,
                "status": t.status,
                "start_ns": t.span_ns.map(|s| s.0),
                "end_ns": t.span_ns.map(|s| s.1),
                "duration_ns": t.duration_ns(),
                "result": t.result,
                "pages_touched": t.pages_touched,
                "pages_verified": t.pages_verified,
            })).collect::<Vec<_>>(),
            "pages_touched": self.pages_touched,
            "pages_verified": self.pages_verified,
            "faults_served": self.faults_served,
            "faults_per_s": self.faults_per_s(),
            "max_in_flight": self.in_flight.map(|f| f.max),
            "mean_in_flight": self.mean_in_flight(),
            "total_wait_ns": self.in_flight.map(|f| f.total_wait_ns),
            "apf_not_present": self.apf_not_present,
            "apf_ready": self.apf_ready,
            "user_apf": self.host_counts(Host::Vmm),
            "el2_host": self.host_counts(Host::El2),
            "migration": self.migration.as_ref().map(|m| &m.raw),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONSOLE: &str = r#"kernel: apf guest kernel 0.1.0
kernel: task 0 'cpu' exited with status 0
RESULT {"scenario":"seed","tasks":[{"name":"cpu","status":0,"dispatches":3,"start_ns":1000,"end_ns":5000,"result":77,"pages_touched":0,"pages_verified":0},{"name":"mem","status":0,"dispatches":1,"start_ns":1200,"end_ns":9000,"result":0,"pages_touched":64,"pages_verified":64}],"pages_touched":64,"pages_verified":64}
"#;

    #[test]
    fn parses_tasks_makespan_and_counts() {
        let r = parse(CONSOLE, &lazy_report()).unwrap();
        assert_eq!(r.makespan_ns, 8000);
        assert_eq!(r.task("cpu").unwrap().duration_ns(), Some(4000));
        assert_eq!(r.task("cpu").unwrap().result, Some(77));
        assert_eq!(r.task("mem").unwrap().pages_verified, 64);
        assert_eq!(
            (r.pages_touched, r.pages_verified, r.faults_served),
            (64, 64, 64)
        );
        assert_eq!((r.apf_not_present, r.apf_ready), (0, 0));
        assert_eq!(r.to_json()["tasks"][1]["duration_ns"], 7800);
        assert_eq!(
            r.in_flight,
            Some(InFlight {
                max: 3,
                total_wait_ns: 16000
            })
        );
        assert_eq!(r.user_apf, None, "no user_apf object: off or kvm");
        assert!(r.to_json()["user_apf"].is_null());
    }

    fn lazy_report() -> Value {
        json!({"lazy": {"served_pages": 64, "max_in_flight": 3, "total_wait_ns": 16000}})
    }

    #[test]
    fn a_migration_run_counts_post_copy_requests_as_its_faults() {
        let report = json!({"lazy": null, "migration": {"postcopy_requests": 50,
            "total_time_ms": 900, "switchover_us": 21000, "blocktime_ms": 400,
            "downtime_ms": 880}});
        let r = parse(CONSOLE, &report).unwrap();
        let migration = r.migration.as_ref().expect("a migration");
        assert_eq!(
            (
                migration.postcopy_requests,
                migration.total_ms,
                migration.switchover_us
            ),
            (50, 900, 21000)
        );
        assert_eq!(r.faults_served, 50);
        assert_eq!(r.in_flight, None);
        assert_eq!(r.to_json()["migration"]["downtime_ms"], 880);
        let incomplete = json!({"migration": {"postcopy_requests": 50}});
        assert_eq!(
            parse(CONSOLE, &incomplete),
            Err(Error::ReportMissing("migration.total_time_ms"))
        );
    }

    #[test]
    fn throughput_and_in_flight_follow_the_makespan() {
        let r = parse(CONSOLE, &lazy_report()).unwrap();
        // 64 faults in 8 us; 16 us of waits over 8 us: 2 in flight on average.
        assert_eq!(r.faults_per_s(), 8e6);
        assert_eq!(r.mean_in_flight(), Some(2.0));
        let j = r.to_json();
        assert_eq!(
            (j["faults_per_s"].as_f64(), j["mean_in_flight"].as_f64()),
            (Some(8e6), Some(2.0))
        );
        assert_eq!(j["max_in_flight"], 3);
    }

    #[test]
    fn user_apf_counters_are_read_tolerantly() {
        let mut report = lazy_report();
        report["user_apf"] = json!({
            "injected": 50, "ready": 51, "broadcasts": 1, "acks": 51, "kicks": 7,
            "sync": {"kernel": 3, "threshold": 11}, "refused_msr_writes": 0
        });
        let u = parse(CONSOLE, &report).unwrap().user_apf.unwrap();
        assert_eq!((u.injected, u.ready, u.sync), (50, 51, 14));
        assert_eq!(u.raw["kicks"], 7, "the whole object is kept");
        report["user_apf"] = json!({"sync": 5});
        let u = parse(CONSOLE, &report).unwrap().user_apf.unwrap();
        assert_eq!(
            (u.injected, u.ready, u.sync),
            (0, 0, 5),
            "missing counters are 0"
        );
    }

    #[test]
    fn without_a_lazy_memory_report_the_guests_touched_pages_stand_in() {
        // The EL2 host serves every touched page once but keeps its counts in QEMU.
        let r = parse(CONSOLE, &json!({"lazy": null, "user_apf": null})).unwrap();
        assert_eq!(
            (r.faults_served, r.in_flight),
            (r.pages_touched, None),
            "served pages stand in; faults in flight are unknown"
        );
        assert!(r.to_json()["max_in_flight"].is_null());
        assert_eq!(r.user_apf, None);
    }

    #[test]
    fn the_el2_hosts_counts_serve_as_our_hosts() {
        let report = json!({"lazy": null, "user_apf": null, "el2_host": {
            "sync_faults": 4, "not_present": 60, "page_ready": 61, "refaults": 2,
            "injected_faults": {"reorder": 7}
        }});
        let r = parse(CONSOLE, &report).unwrap();
        assert_eq!(r.faults_served, 64, "60 not present + 4 synchronous");
        let u = r.user_apf.clone().unwrap();
        assert_eq!((u.injected, u.ready, u.sync), (60, 61, 4));
        assert_eq!(u.raw["injected_faults"]["reorder"], 7);
        let j = r.to_json();
        assert!(j["user_apf"].is_null(), "{j}");
        assert_eq!(
            j["el2_host"]["page_ready"], 61,
            "under the report's name: {j}"
        );
    }

    #[test]
    fn malformed_output_is_an_error() {
        assert_eq!(parse("no result\n", &json!({})), Err(Error::NoResult));
        assert!(matches!(
            parse("RESULT {oops", &json!({})),
            Err(Error::NotJson(_))
        ));
        assert_eq!(parse("RESULT {}", &json!({})), Err(Error::Missing("tasks")));
        assert_eq!(
            parse(r#"RESULT {"tasks":[{"name":"a","status":0}]}"#, &json!({})),
            Err(Error::NoTimedTask)
        );
        assert_eq!(
            parse(CONSOLE, &json!({"lazy": {}})),
            Err(Error::ReportMissing("lazy.served_pages"))
        );
        assert_eq!(
            parse(
                CONSOLE,
                &json!({"lazy": {"served_pages": 1, "max_in_flight": 1}})
            ),
            Err(Error::ReportMissing("lazy.total_wait_ns"))
        );
    }
}
