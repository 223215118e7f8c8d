//! A batched, strided matrix product described as plain data: [`Gemm`] and its operands'
//! [`MatView`]s. `ops::matmul::gemm` runs one; `reference::matmul::gemm` checks it.

/// Where a batch of matrices lives inside a tensor, in elements: element (i, j) of matrix
/// (b, s) — outer batch index b, inner batch index s — is at
/// `offset + b*batch_stride + s*inner_stride + i*row_stride + j*col_stride`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatView {
    /// Element index of (0, 0) of the first matrix.
    pub offset: usize,
    /// Elements between consecutive outer-batch matrices; 0 to share one matrix.
    pub batch_stride: usize,
    /// Elements between consecutive rows.
    pub row_stride: usize,
    /// Elements between consecutive columns.
    pub col_stride: usize,
    /// Stride of the inner batch index (see [`Gemm::inner`]); 0 when there is none.
    pub inner_stride: usize,
}

impl MatView {
    /// A dense row-major `rows x cols` matrix, repeated every `rows*cols` elements.
    pub fn row_major(rows: usize, cols: usize) -> Self {
        MatView {
            offset: 0,
            batch_stride: rows * cols,
            row_stride: cols,
            col_stride: 1,
            inner_stride: 0,
        }
    }

    /// The same elements viewed transposed.
    pub fn t(self) -> Self {
        MatView {
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// The same matrix for every batch entry (a shared weight).
    pub fn shared(self) -> Self {
        MatView {
            batch_stride: 0,
            ..self
        }
    }

    /// Largest element index touched for `batch` matrices of `rows x cols`.
    pub(crate) fn last_index(
        &self,
        batch: usize,
        inner: usize,
        rows: usize,
        cols: usize,
    ) -> Option<usize> {
        let b = (batch - 1).checked_mul(self.batch_stride)?;
        let b = b.checked_add((inner - 1).checked_mul(self.inner_stride)?)?;
        let r = (rows - 1).checked_mul(self.row_stride)?;
        let c = (cols - 1).checked_mul(self.col_stride)?;
        self.offset.checked_add(b)?.checked_add(r)?.checked_add(c)
    }
}

/// One batched product: for each b < batch and s < inner, C_bs (m x n) = A_bs (m x k) · B_bs (k x n).
/// The inner index lets one dispatch cover, say, the query, key and value weights of every
/// mechanism (s = which projection, b = which mechanism).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gemm {
    /// Outer batch count (≥ 1).
    pub batch: usize,
    /// Inner batch count (1 for a plain batch); views step by their `inner_stride`.
    pub inner: usize,
    /// Rows of A and C.
    pub m: usize,
    /// Columns of B and C.
    pub n: usize,
    /// Columns of A = rows of B (the reduced dimension).
    pub k: usize,
    /// View of the left operand (m x k).
    pub a: MatView,
    /// View of the right operand (k x n).
    pub b: MatView,
    /// C's column stride must be 1.
    pub c: MatView,
    /// Bias view: element j of batch b is `bias[offset + b*batch_stride + j]`.
    pub bias: Option<MatView>,
    /// Add the product to C's current contents instead of overwriting them.
    pub accumulate: bool,
}
