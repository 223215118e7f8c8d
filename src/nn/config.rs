//! Configuration of a RIMs cell: the plain types live in [`crate::spec::cell`] (the reference
//! uses them too); here, the sizes the ops take, which a utility may not name.

pub use crate::spec::cell::{CellKind, RimsConfig, Variant};

impl RimsConfig {
    /// The sizes [`crate::ops::input_attention`] needs.
    pub fn input_attention_sizes(&self) -> crate::ops::input_attention::Sizes {
        crate::ops::input_attention::Sizes {
            mechanisms: self.mechanisms,
            active: self.active,
            hidden: self.hidden,
            heads: self.input_heads,
            key: self.input_key,
            value: self.input_value,
        }
    }

    /// The sizes [`crate::ops::communication`] needs.
    pub fn communication_sizes(&self) -> crate::ops::communication::Sizes {
        crate::ops::communication::Sizes {
            mechanisms: self.mechanisms,
            heads: self.comm_heads,
            key: self.comm_key,
            value: self.comm_value,
        }
    }
}
