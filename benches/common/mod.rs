//! Deterministic data shared by the benchmarks (`mod common;`).

// Each benchmark binary uses its own subset of these helpers.
#![allow(dead_code)]

/// xorshift64: deterministic, fast, good enough to pick inputs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let x = &mut self.0;
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    pub fn next_u128(&mut self) -> u128 {
        (u128::from(self.next_u64()) << 64) | u128::from(self.next_u64())
    }

    /// Uniform enough in `0..n` for n far below 2^64.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Incompressible bytes (`n` rounded down to a multiple of 8).
pub fn random(n: usize) -> Vec<u8> {
    let mut rng = Rng::new(0x9e3779b97f4a7c15);
    (0..n / 8).flat_map(|_| rng.next_u64().to_le_bytes()).collect()
}

/// Source-code-like text: compressible like a source tree.
pub fn text(n: usize) -> Vec<u8> {
    let words = ["static ", "int ", "return ", "struct ", "if (", "x->", "++i", ";\n", "\t", "unsigned long ", "0x1f"];
    let mut x = 12345u64;
    let mut out = Vec::with_capacity(n + 32);
    while out.len() < n {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        out.extend_from_slice(words[(x >> 59) as usize % words.len()].as_bytes());
    }
    out.truncate(n);
    out
}
