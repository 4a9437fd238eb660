//! Capacity planning (§6.2.2, Fig. 6.3/6.4).
//!
//! With `n` VMs whose overloads are independent and a per-VM overload probability `p`, the number of simultaneously
//! overloaded VMs is Binomial(n, p). Splitting overloads into transient (fraction `f`) and sustained (1 - f) gives
//! per-VM probabilities `p_t = p f` and `p_s = p (1 - f)` and counts `T ~ Bin(n, p_t)`, `S ~ Bin(n, p_s)`. The
//! paper's example (150 VMs, p = 0.16, f = 0.96) states that with probability 0.97 no more than 3 VMs are in
//! sustained and no more than 31 in transient overload; the exact values are P(S <= 3) = 0.9837 and
//! P(T <= 31) = 0.9682, which this module computes, together with the exact joint probability (S, T and the rest
//! are multinomial, not independent).
//!
//! Excess space follows the paper's assumptions: a sustained overload needs room for a full VM (the requested
//! size) at a migration target; a transient overload needs page-repository space equal to the withheld memory
//! (requested - allocated).

use serde::Serialize;

/// ln(P(X = i)) for X ~ Bin(n, p), computed for i = 0..=kmax by recurrence in log space.
fn log_pmfs(n: u64, p: f64, kmax: u64) -> Vec<f64> {
    let kmax = kmax.min(n);
    let mut out = Vec::with_capacity(kmax as usize + 1);
    if p <= 0.0 {
        out.push(0.0);
        out.extend(std::iter::repeat_n(f64::NEG_INFINITY, kmax as usize));
        return out;
    }
    if p >= 1.0 {
        out.extend(std::iter::repeat_n(f64::NEG_INFINITY, kmax as usize));
        out.push(if kmax == n { 0.0 } else { f64::NEG_INFINITY });
        return out;
    }
    let (lp, lq) = (p.ln(), (-p).ln_1p());
    let mut l = n as f64 * lq;
    out.push(l);
    for i in 0..kmax {
        l += ((n - i) as f64).ln() - ((i + 1) as f64).ln() + lp - lq;
        out.push(l);
    }
    out
}

/// P(X <= k) for X ~ Bin(n, p).
pub fn binom_cdf(n: u64, p: f64, k: u64) -> f64 {
    if k >= n {
        return 1.0;
    }
    log_pmfs(n, p, k).iter().map(|l| l.exp()).sum::<f64>().min(1.0)
}

/// P(X = k) for X ~ Bin(n, p).
pub fn binom_pmf(n: u64, p: f64, k: u64) -> f64 {
    if k > n {
        return 0.0;
    }
    log_pmfs(n, p, k).last().map_or(0.0, |l| l.exp())
}

/// Smallest k with P(X <= k) >= confidence.
pub fn smallest_bound(n: u64, p: f64, confidence: f64) -> u64 {
    // The CDF is monotone in k: binary search over 0..=n.
    let (mut lo, mut hi) = (0u64, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if binom_cdf(n, p, mid) >= confidence {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// Exact P(S <= a and T <= b) where (S, T, rest) ~ Multinomial(n; p_s, p_t, 1 - p_s - p_t).
pub fn joint_cdf(n: u64, p_s: f64, p_t: f64, a: u64, b: u64) -> f64 {
    let cond = if p_s < 1.0 { p_t / (1.0 - p_s) } else { 0.0 };
    let mut total = 0.0;
    for (s, l) in log_pmfs(n, p_s, a).iter().enumerate() {
        let s = s as u64;
        total += l.exp() * binom_cdf(n - s, cond.clamp(0.0, 1.0), b);
    }
    total.min(1.0)
}

/// Inputs of a plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanInput {
    pub vms: u64,
    /// Probability that a VM is overloaded (the most overload-prone VM's, as the paper says).
    pub p_overload: f64,
    /// Fraction of overloads that are transient.
    pub transient_fraction: f64,
    /// Requested confidence for the bounds.
    pub confidence: f64,
    /// Memory the VM asked for (MiB): the space a migration target must have.
    pub requested_mib: u64,
    /// Memory the VM actually got (MiB).
    pub allocated_mib: u64,
    /// Bounds to evaluate in addition to the smallest ones meeting the confidence (e.g. the paper's 3 and 31).
    pub sustained_bound: Option<u64>,
    pub transient_bound: Option<u64>,
    /// Total cloud memory for the "how many VMs fit" analysis (Fig. 6.3), MiB.
    pub total_mib: Option<u64>,
}

/// A bound and its exact probability.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bound {
    pub bound: u64,
    pub probability: f64,
}

/// Excess space needed for given bounds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Split {
    pub sustained: Bound,
    pub transient: Bound,
    /// Exact P(S <= sustained.bound and T <= transient.bound).
    pub joint_probability: f64,
    pub migration_target_mib: u64,
    pub page_repository_mib: u64,
    pub total_excess_mib: u64,
}

/// How many VMs fit in a fixed amount of memory (Fig. 6.3/6.4 for one allocation).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Capacity {
    pub total_mib: u64,
    pub overdriver_vms: u64,
    pub overdriver_vm_mib: u64,
    pub overdriver_migration_mib: u64,
    pub overdriver_repository_mib: u64,
    pub migration_only_vms: u64,
    pub migration_only_vm_mib: u64,
    pub migration_only_excess_mib: u64,
}

/// A full plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub input: PlanInput,
    pub p_sustained: f64,
    pub p_transient: f64,
    /// Smallest bounds meeting the confidence individually.
    pub at_confidence: Split,
    /// The caller's bounds, if given.
    pub requested_bounds: Option<Split>,
    /// Migration-only: every overload needs a migration target.
    pub migration_only: Bound,
    pub migration_only_excess_mib: u64,
    pub capacity: Option<Capacity>,
}

/// Plan errors.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("{0} must be a probability between 0 and 1")]
    NotAProbability(&'static str),
    #[error("allocated memory ({allocated} MiB) exceeds requested memory ({requested} MiB)")]
    AllocatedExceedsRequested { allocated: u64, requested: u64 },
    #[error("number of VMs must be at least 1")]
    NoVms,
}

fn split(inp: &PlanInput, n: u64, p_s: f64, p_t: f64, ks: u64, kt: u64) -> Split {
    let withheld = inp.requested_mib - inp.allocated_mib;
    let mig = ks.saturating_mul(inp.requested_mib);
    let rep = kt.saturating_mul(withheld);
    Split {
        sustained: Bound { bound: ks, probability: binom_cdf(n, p_s, ks) },
        transient: Bound { bound: kt, probability: binom_cdf(n, p_t, kt) },
        joint_probability: joint_cdf(n, p_s, p_t, ks, kt),
        migration_target_mib: mig,
        page_repository_mib: rep,
        total_excess_mib: mig.saturating_add(rep),
    }
}

/// Excess space for `n` VMs at the input's confidence: (Overdriver migration, Overdriver repository, migration-only).
fn excess_for(inp: &PlanInput, n: u64, p_s: f64, p_t: f64) -> (u64, u64, u64) {
    let ks = smallest_bound(n, p_s, inp.confidence);
    let kt = smallest_bound(n, p_t, inp.confidence);
    let km = smallest_bound(n, inp.p_overload, inp.confidence);
    let withheld = inp.requested_mib - inp.allocated_mib;
    (ks * inp.requested_mib, kt * withheld, km * inp.requested_mib)
}

/// Compute a plan.
pub fn plan(inp: PlanInput) -> Result<Plan, PlanError> {
    for (name, v) in [
        ("overload probability", inp.p_overload),
        ("transient fraction", inp.transient_fraction),
        ("confidence", inp.confidence),
    ] {
        if !(0.0..=1.0).contains(&v) {
            return Err(PlanError::NotAProbability(name));
        }
    }
    if inp.allocated_mib > inp.requested_mib {
        return Err(PlanError::AllocatedExceedsRequested {
            allocated: inp.allocated_mib,
            requested: inp.requested_mib,
        });
    }
    if inp.vms == 0 {
        return Err(PlanError::NoVms);
    }
    let n = inp.vms;
    let p_t = inp.p_overload * inp.transient_fraction;
    let p_s = inp.p_overload * (1.0 - inp.transient_fraction);
    let ks = smallest_bound(n, p_s, inp.confidence);
    let kt = smallest_bound(n, p_t, inp.confidence);
    let at_confidence = split(&inp, n, p_s, p_t, ks, kt);
    let requested_bounds = match (inp.sustained_bound, inp.transient_bound) {
        (None, None) => None,
        (a, b) => Some(split(&inp, n, p_s, p_t, a.unwrap_or(ks), b.unwrap_or(kt))),
    };
    let km = smallest_bound(n, inp.p_overload, inp.confidence);
    let migration_only = Bound { bound: km, probability: binom_cdf(n, inp.p_overload, km) };
    let capacity = inp.total_mib.map(|total| {
        let alloc = inp.allocated_mib.max(1);
        let fits_od = |n: u64| {
            let (m, r, _) = excess_for(&inp, n, p_s, p_t);
            n * alloc + m + r <= total
        };
        let fits_mig = |n: u64| {
            let (_, _, m) = excess_for(&inp, n, p_s, p_t);
            n * alloc + m <= total
        };
        let max_fit = |f: &dyn Fn(u64) -> bool| {
            let mut n = 0;
            while n < total / alloc && f(n + 1) {
                n += 1;
            }
            n
        };
        let od = max_fit(&fits_od);
        let mo = max_fit(&fits_mig);
        let (m, r, _) = excess_for(&inp, od, p_s, p_t);
        let (_, _, mm) = excess_for(&inp, mo, p_s, p_t);
        Capacity {
            total_mib: total,
            overdriver_vms: od,
            overdriver_vm_mib: od * alloc,
            overdriver_migration_mib: m,
            overdriver_repository_mib: r,
            migration_only_vms: mo,
            migration_only_vm_mib: mo * alloc,
            migration_only_excess_mib: mm,
        }
    });
    Ok(Plan {
        p_sustained: p_s,
        p_transient: p_t,
        at_confidence,
        requested_bounds,
        migration_only_excess_mib: km * inp.requested_mib,
        migration_only,
        capacity,
        input: inp,
    })
}

fn fmt_split(out: &mut String, s: &Split, n: u64) {
    use std::fmt::Write;
    let _ = writeln!(
        out,
        "  P(sustained <= {}) = {:.4}   P(transient <= {}) = {:.4}   P(both) = {:.4}",
        s.sustained.bound, s.sustained.probability, s.transient.bound, s.transient.probability, s.joint_probability
    );
    let _ = writeln!(
        out,
        "  excess space: {} MiB migration targets ({} full VMs) + {} MiB page repositories = {} MiB for {} VMs",
        s.migration_target_mib, s.sustained.bound, s.page_repository_mib, s.total_excess_mib, n
    );
}

/// Human-readable rendering.
pub fn render(p: &Plan) -> String {
    use std::fmt::Write;
    let i = &p.input;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} VMs, overload probability {}, {:.1} % transient, {} MiB requested / {} MiB allocated",
        i.vms,
        i.p_overload,
        i.transient_fraction * 100.0,
        i.requested_mib,
        i.allocated_mib
    );
    let _ = writeln!(out, "per-VM: p(sustained) = {:.4}, p(transient) = {:.4}", p.p_sustained, p.p_transient);
    if let Some(s) = &p.requested_bounds {
        let _ = writeln!(out, "requested bounds:");
        fmt_split(&mut out, s, i.vms);
    }
    let _ = writeln!(out, "smallest bounds with probability >= {} each:", i.confidence);
    fmt_split(&mut out, &p.at_confidence, i.vms);
    let _ = writeln!(
        out,
        "migration only: P(overloaded <= {}) = {:.4}, excess {} MiB",
        p.migration_only.bound, p.migration_only.probability, p.migration_only_excess_mib
    );
    if let Some(c) = &p.capacity {
        let _ = writeln!(out, "in {} MiB of memory at confidence {}:", c.total_mib, i.confidence);
        let _ = writeln!(
            out,
            "  overdriver:     {} VMs ({} MiB VMs, {} MiB migration, {} MiB repositories)",
            c.overdriver_vms, c.overdriver_vm_mib, c.overdriver_migration_mib, c.overdriver_repository_mib
        );
        let _ = writeln!(
            out,
            "  migration only: {} VMs ({} MiB VMs, {} MiB migration)",
            c.migration_only_vms, c.migration_only_vm_mib, c.migration_only_excess_mib
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn paper() -> PlanInput {
        PlanInput {
            vms: 150,
            p_overload: 0.16,
            transient_fraction: 0.96,
            confidence: 0.96,
            requested_mib: 1024,
            allocated_mib: 640,
            sustained_bound: Some(3),
            transient_bound: Some(31),
            total_mib: None,
        }
    }

    #[test]
    fn reproduces_paper_example() {
        let p = plan(paper()).expect("plan");
        assert!((p.p_transient - 0.1536).abs() < 1e-12);
        assert!((p.p_sustained - 0.0064).abs() < 1e-12);
        let r = p.requested_bounds.expect("bounds");
        // "with probability 0.97 ... no more than 3 sustained and no more than 31 transient".
        assert!((r.sustained.probability - 0.9837).abs() < 1e-4, "{}", r.sustained.probability);
        assert!((r.transient.probability - 0.968).abs() < 1e-3, "{}", r.transient.probability);
        assert_eq!(format!("{:.2}", r.transient.probability), "0.97");
        assert!(r.joint_probability < r.transient.probability && r.joint_probability > 0.95);
        assert_eq!(r.migration_target_mib, 3 * 1024);
        assert_eq!(r.page_repository_mib, 31 * 384);
        // 31 is the smallest transient bound at 0.96 (30 is not enough); 0.97 needs 32.
        assert_eq!(p.at_confidence.transient.bound, 31);
        assert!(binom_cdf(150, 0.1536, 30) < 0.96);
        assert_eq!(smallest_bound(150, 0.1536, 0.97), 32);
        assert_eq!(smallest_bound(150, 0.0064, 0.97), 3);
    }

    #[test]
    fn small_cases_match_closed_form() {
        // Bin(4, 0.5): P(X<=1) = (1 + 4)/16.
        assert!((binom_cdf(4, 0.5, 1) - 5.0 / 16.0).abs() < 1e-12);
        assert!((binom_pmf(4, 0.5, 2) - 6.0 / 16.0).abs() < 1e-12);
        assert_eq!(binom_cdf(4, 0.5, 4), 1.0);
        assert_eq!(binom_cdf(10, 0.0, 0), 1.0);
        assert_eq!(binom_cdf(10, 1.0, 9), 0.0);
        assert_eq!(smallest_bound(10, 0.0, 0.99), 0);
        assert_eq!(smallest_bound(10, 1.0, 0.5), 10);
    }

    #[test]
    fn large_n_does_not_underflow_to_garbage() {
        // Mean 16000, sd ~ 116: the median bound is near the mean.
        let k = smallest_bound(100_000, 0.16, 0.5);
        assert!((15_900..=16_100).contains(&k), "{k}");
        assert!(binom_cdf(100_000, 0.16, 17_000) > 0.999);
    }

    #[test]
    fn bad_inputs_are_rejected() {
        assert_eq!(plan(PlanInput { p_overload: 1.5, ..paper() }).err(), Some(PlanError::NotAProbability("overload probability")));
        assert!(matches!(
            plan(PlanInput { allocated_mib: 2048, ..paper() }),
            Err(PlanError::AllocatedExceedsRequested { .. })
        ));
        assert_eq!(plan(PlanInput { vms: 0, ..paper() }).err(), Some(PlanError::NoVms));
    }

    #[test]
    fn overdriver_fits_more_vms_than_migration_only() {
        let p = plan(PlanInput { total_mib: Some(100 * 1024 - 100), confidence: 0.97, ..paper() }).expect("plan");
        let c = p.capacity.expect("capacity");
        assert!(c.overdriver_vms > c.migration_only_vms, "{c:?}");
        assert!(c.overdriver_vm_mib + c.overdriver_migration_mib + c.overdriver_repository_mib <= c.total_mib);
        assert!(c.migration_only_vm_mib + c.migration_only_excess_mib <= c.total_mib);
    }

    proptest! {
        #[test]
        fn cdf_is_monotone_and_bounded(n in 1u64..400, p in 0.0f64..1.0, k in 0u64..400) {
            let a = binom_cdf(n, p, k);
            let b = binom_cdf(n, p, k + 1);
            prop_assert!((0.0..=1.0).contains(&a));
            prop_assert!(b + 1e-12 >= a);
        }

        #[test]
        fn smallest_bound_is_smallest(n in 1u64..300, p in 0.0f64..1.0, c in 0.01f64..0.999) {
            let k = smallest_bound(n, p, c);
            prop_assert!(binom_cdf(n, p, k) >= c || k == n);
            if k > 0 {
                prop_assert!(binom_cdf(n, p, k - 1) < c);
            }
        }

        #[test]
        fn joint_is_at_most_each_marginal(n in 1u64..200, ps in 0.0f64..0.3, pt in 0.0f64..0.6, a in 0u64..20, b in 0u64..80) {
            let j = joint_cdf(n, ps, pt, a, b);
            prop_assert!(j <= binom_cdf(n, ps, a) + 1e-9);
            prop_assert!(j <= binom_cdf(n, pt, b) + 1e-9);
        }
    }
}
