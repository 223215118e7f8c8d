//! f64 oracle for `ops::embedding`.

/// Rows of `table` [vocab, dim] for each token (zero rows for tokens outside the table).
pub fn forward(tokens: &[u32], table: &[f64], vocab: usize, dim: usize) -> Vec<f64> {
    let mut out = vec![0.0; tokens.len() * dim];
    for (r, &v) in tokens.iter().enumerate() {
        if (v as usize) < vocab {
            out[r * dim..(r + 1) * dim]
                .copy_from_slice(&table[v as usize * dim..(v as usize + 1) * dim]);
        }
    }
    out
}

/// Gradient of the table: dtable[v] = Σ of grad rows whose token is v.
pub fn backward(tokens: &[u32], grad: &[f64], vocab: usize, dim: usize) -> Vec<f64> {
    let mut d = vec![0.0; vocab * dim];
    for (r, &v) in tokens.iter().enumerate() {
        if (v as usize) < vocab {
            for c in 0..dim {
                d[v as usize * dim + c] += grad[r * dim + c];
            }
        }
    }
    d
}
