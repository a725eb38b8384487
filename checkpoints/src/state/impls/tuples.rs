//! Tuples of 1 to 8 elements.

use crate::state::fingerprint::{combine, hash_str};
use crate::state::{AfterLoad, Decoder, Encoder, LoadError, SaveError, Stateify, TypeVisitor};

macro_rules! tuple {
    ($($t:ident $i:tt),+) => {
        impl<$($t: Stateify),+> Stateify for ($($t,)+) {
            const SHAPE: u64 = {
                let h = hash_str("Tuple");
                $(let h = combine(h, $t::SHAPE);)+
                h
            };
            const MIN_SIZE: usize = 0 $(+ $t::MIN_SIZE)+;
            const HAS_HOOKS: bool = false $(|| $t::HAS_HOOKS)+;
            fn type_name() -> String {
                let names: Vec<String> = vec![$($t::type_name()),+];
                format!("({})", names.join(", "))
            }
            fn visit_types(v: &mut TypeVisitor) {
                $($t::visit_types(v);)+
            }
            fn save(&self, enc: &mut Encoder) -> Result<(), SaveError> {
                $(self.$i.save(enc)?;)+
                Ok(())
            }
            fn load(dec: &mut Decoder<'_>) -> Result<Self, LoadError> {
                Ok(($($t::load(dec)?,)+))
            }
            fn after_load_walk(&self, hooks: &mut AfterLoad) {
                $(self.$i.after_load_walk(hooks);)+
            }
        }
    };
}

tuple!(A 0);
tuple!(A 0, B 1);
tuple!(A 0, B 1, C 2);
tuple!(A 0, B 1, C 2, D 3);
tuple!(A 0, B 1, C 2, D 3, E 4);
tuple!(A 0, B 1, C 2, D 3, E 4, F 5);
tuple!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
