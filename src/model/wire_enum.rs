//! `wire_enum!`: a closed set of values with one spelling on the wire, in the database, in
//! config files and on the command line. Parsing errors name the field and list the values,
//! and serde goes through the same parser so JSON, TOML and CLI input fail alike.

/// Defines `enum $name` with `ALL`, `as_str`, `Display`, `FromStr` (errors name `$field`)
/// and serde through `FromStr`.
macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident, $field:literal { $($(#[$vm:meta])* $variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $variant),+
        }

        impl $name {
            /// Every accepted spelling.
            pub const ALL: &'static [&'static str] = &[$($wire),+];

            pub fn as_str(&self) -> &'static str {
                match self { $(Self::$variant => $wire),+ }
            }

            /// Any letter case (`csv` ⇒ `CSV`): what the command line accepts. The wire
            /// values differ in more than case, so this is never ambiguous.
            pub fn parse_any_case(s: &str) -> Result<Self, $crate::model::ValidationError> {
                Self::ALL
                    .iter()
                    .find(|w| w.eq_ignore_ascii_case(s))
                    .map_or_else(|| s.parse(), |w| w.parse())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::model::ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($wire => Ok(Self::$variant),)+
                    _ => Err($crate::model::ValidationError::new(
                        $field,
                        format!("must be one of {}, got {:?}", Self::ALL.join(", "), s),
                    )),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use wire_enum;
