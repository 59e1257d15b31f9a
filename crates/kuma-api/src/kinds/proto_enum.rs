//! Enums of Kuma's protobuf-based kinds.
//!
//! Protobuf's JSON mapping writes an enum as its value name but also accepts
//! the number, so both spellings must parse; printing always uses the name.

/// Declares an enum whose variants carry their wire name and protobuf number.
macro_rules! proto_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident($wire:literal, $num:literal)),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name written in YAML/JSON.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire),+
                }
            }

            pub fn from_wire(s: &str) -> Option<Self> {
                match s {
                    $($wire => Some($name::$variant),)+
                    _ => None,
                }
            }

            pub fn from_number(n: i64) -> Option<Self> {
                match n {
                    $($num => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                #[derive(serde::Deserialize)]
                #[serde(untagged)]
                enum Wire {
                    Name(String),
                    Number(i64),
                }
                let names = || {
                    $name::ALL
                        .iter()
                        .map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                match Wire::deserialize(d)? {
                    Wire::Name(s) => $name::from_wire(&s).ok_or_else(|| {
                        serde::de::Error::custom(format!(
                            "invalid value {s:?}, expected one of: {}",
                            names()
                        ))
                    }),
                    Wire::Number(n) => $name::from_number(n).ok_or_else(|| {
                        serde::de::Error::custom(format!(
                            "invalid value {n}, expected one of: {}",
                            names()
                        ))
                    }),
                }
            }
        }
    };
}

pub(crate) use proto_enum;
