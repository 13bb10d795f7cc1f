//! The guest scenarios `compare` runs, and `--scenario`'s list form `mlp:K1,K2,...` that makes
//! an MLP sweep (one comparison per k).

use std::fmt;
use std::str::FromStr;

/// Largest `k` of `mlp:k` (the guest's limit).
const MLP_MAX: u32 = workloads::mem::MAX_PARALLEL_TASKS;

/// One guest scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    Seed,
    Cpu,
    Mem,
    Mlp(u32),
}

impl Scenario {
    /// Memory tasks in the scenario.
    pub fn mem_tasks(self) -> u64 {
        match self {
            Scenario::Seed | Scenario::Mem => 1,
            Scenario::Cpu => 0,
            Scenario::Mlp(k) => u64::from(k),
        }
    }

    pub fn has_cpu(self) -> bool {
        matches!(self, Scenario::Seed | Scenario::Cpu)
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scenario::Seed => f.write_str("seed"),
            Scenario::Cpu => f.write_str("cpu"),
            Scenario::Mem => f.write_str("mem"),
            Scenario::Mlp(k) => write!(f, "mlp:{k}"),
        }
    }
}

fn expected() -> String {
    format!("expected seed, cpu, mem, mlp:K or mlp:K1,K2,... with each K from 1 to {MLP_MAX}")
}

/// What `--scenario` names: one scenario, or several `mlp:k` (in increasing k, each once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenarios(pub Vec<Scenario>);

impl FromStr for Scenarios {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let one = |scenario| Ok(Scenarios(vec![scenario]));
        match s {
            "seed" => one(Scenario::Seed),
            "cpu" => one(Scenario::Cpu),
            "mem" => one(Scenario::Mem),
            _ => {
                let list = s.strip_prefix("mlp:").ok_or_else(expected)?;
                let mut ks = list
                    .split(',')
                    .map(|k| k.parse().ok().filter(|k| (1..=MLP_MAX).contains(k)))
                    .collect::<Option<Vec<u32>>>()
                    .ok_or_else(expected)?;
                ks.sort_unstable();
                ks.dedup();
                Ok(Scenarios(ks.into_iter().map(Scenario::Mlp).collect()))
            }
        }
    }
}

impl fmt::Display for Scenarios {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [one] => write!(f, "{one}"),
            many => {
                let ks: Vec<String> = many.iter().map(|s| s.mem_tasks().to_string()).collect();
                write!(f, "mlp:{}", ks.join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_parse_and_print() {
        for s in ["seed", "cpu", "mem", "mlp:1", "mlp:96"] {
            let one = s.parse::<Scenarios>().unwrap();
            assert_eq!(one.0.len(), 1, "{s}");
            assert_eq!(
                (one.0[0].to_string(), one.to_string()),
                (s.into(), s.into())
            );
        }
        for bad in ["mlp:0", "mlp:97", "mlp:", "demo", ""] {
            assert!(bad.parse::<Scenarios>().is_err(), "{bad}");
        }
    }

    #[test]
    fn an_mlp_list_is_sorted_and_deduplicated() {
        let list: Scenarios = "mlp:16,1,4,4,32".parse().unwrap();
        assert_eq!(
            list.0,
            [1, 4, 16, 32].map(Scenario::Mlp),
            "increasing k, each once"
        );
        assert_eq!(list.to_string(), "mlp:1,4,16,32");
        for bad in ["mlp:1,,4", "mlp:1,97", "mlp:1,x", "seed,mlp:1", "mlp:1,"] {
            let err = bad.parse::<Scenarios>().unwrap_err();
            assert!(err.contains("mlp:K1,K2"), "{bad}: {err}");
        }
    }
}
