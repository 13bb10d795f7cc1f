//! The demo's park/wake ping-pong on two CPUs, as both architectures' tests check it.

use serde_json::Value;

fn count(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("{value} is not a count"))
}

/// The demo's ping (task 3, CPU 1) and pong (task 4, CPU 0) park and wake each other 100
/// times: every wake but the early ones crosses CPUs, by an inter-processor interrupt
/// (without it the woken task's CPU would never look at its inbox and the demo would hang).
pub fn assert_ping_pong_across_cpus(stdout: &str, r: &Value, what: &str) {
    assert!(stdout.contains("pong: 100 rounds"), "{what}: {stdout}");
    let tasks = r["tasks"].as_array().unwrap();
    assert!(tasks.iter().all(|t| t["status"] == 0), "{what}: {r}");
    assert_eq!(tasks[3]["name"], "ping", "{what}: {r}");
    assert_eq!(
        (count(&tasks[3]["cpu"]), count(&tasks[4]["cpu"])),
        (1, 0),
        "{what}: {r}"
    );
    assert_eq!(count(&r["sched"]["wakes"]), 200, "{what}: {r}");
    let early = count(&r["sched"]["early_wakes"]);
    let remote: u64 = r["cpus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| count(&c["remote_wakes"]))
        .sum();
    assert_eq!(
        remote + early,
        200,
        "{what}: each wake reached the other CPU or came early: {r}"
    );
    for (i, cpu) in r["cpus"].as_array().unwrap().iter().enumerate() {
        assert!(count(&cpu["remote_wakes"]) > 0, "{what}: CPU {i}: {r}");
    }
}
