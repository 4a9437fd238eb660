//! `coopswap-memcheck`: a memory hog that verifies every byte it wrote, for testing swap devices.
//!
//! It allocates `--mib` MiB, and for each of `--passes` passes writes every 4 KiB page with a pattern unique to
//! (seed, pass, page) and then reads every page back and compares all 4096 bytes. With more memory than the machine
//! has free, the pages go through swap between the write and the check, so a swap device that loses or mixes up a
//! page is caught. The pattern is one 64-bit word repeated over the page (after the page number), so it compresses
//! well (zram as a local store stays small). Exit status: 0 all correct, 1 a mismatch (the first ones are printed),
//! 2 usage or allocation error.

use std::process::ExitCode;

const PAGE_WORDS: usize = 4096 / 8;

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The word page `page` holds in pass `pass`.
fn word(seed: u64, pass: u64, page: u64) -> u64 {
    mix(seed ^ mix(pass.wrapping_mul(0x1000_0000_01B3) ^ mix(page)))
}

fn fill(mem: &mut [u64], seed: u64, pass: u64) {
    for (page, chunk) in mem.chunks_mut(PAGE_WORDS).enumerate() {
        let w = word(seed, pass, page as u64);
        for (i, x) in chunk.iter_mut().enumerate() {
            *x = if i == 0 { page as u64 } else { w };
        }
    }
}

/// Returns the number of wrong pages, printing the first few.
fn verify(mem: &[u64], seed: u64, pass: u64) -> u64 {
    let mut bad = 0u64;
    for (page, chunk) in mem.chunks(PAGE_WORDS).enumerate() {
        let w = word(seed, pass, page as u64);
        let wrong = chunk
            .iter()
            .enumerate()
            .find(|(i, x)| **x != if *i == 0 { page as u64 } else { w });
        if let Some((i, x)) = wrong {
            if bad < 5 {
                eprintln!("memcheck: pass {pass} page {page} word {i}: {x:#018x}, want {w:#018x}");
            }
            bad += 1;
        }
    }
    bad
}

fn arg(args: &[String], name: &str, default: u64) -> Result<u64, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{name} needs a number")),
    }
}

fn run() -> Result<bool, String> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("usage: coopswap-memcheck [--mib N (64)] [--passes N (2)] [--seed N (1)]");
        return Ok(true);
    }
    let mib = arg(&args, "--mib", 64)?;
    let passes = arg(&args, "--passes", 2)?;
    let seed = arg(&args, "--seed", 1)?;
    let words = usize::try_from(mib.checked_mul(1 << 17).ok_or("--mib too large")?).map_err(|e| e.to_string())?;
    let mut mem: Vec<u64> = Vec::new();
    mem.try_reserve_exact(words).map_err(|e| format!("cannot allocate {mib} MiB: {e}"))?;
    mem.resize(words, 0);
    let mut all_ok = true;
    for pass in 0..passes {
        let t = std::time::Instant::now();
        fill(&mut mem, seed, pass);
        let bad = verify(&mem, seed, pass);
        println!(
            "memcheck: pass {pass}: {} pages written and verified in {:.1} s, {bad} wrong",
            words / PAGE_WORDS,
            t.elapsed().as_secs_f64()
        );
        all_ok &= bad == 0;
    }
    Ok(all_ok)
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => {
            println!("memcheck: ok");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("memcheck: FAILED");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("memcheck: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_finds_a_single_flipped_byte() {
        let mut mem = vec![0u64; PAGE_WORDS * 8];
        fill(&mut mem, 7, 1);
        assert_eq!(verify(&mem, 7, 1), 0);
        mem[PAGE_WORDS * 3 + 100] ^= 1 << 40;
        assert_eq!(verify(&mem, 7, 1), 1);
        // Two pages whose first words (page numbers) are exchanged are both wrong.
        mem.swap(PAGE_WORDS * 5, PAGE_WORDS * 6);
        assert_eq!(verify(&mem, 7, 1), 3);
    }

    #[test]
    fn passes_use_different_patterns() {
        let mut mem = vec![0u64; PAGE_WORDS * 2];
        fill(&mut mem, 7, 0);
        assert_ne!(verify(&mem, 7, 1), 0);
    }
}
