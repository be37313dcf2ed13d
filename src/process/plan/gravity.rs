//! Gravity: where a crop or a watermark is anchored (OSS's nine points).

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gravity {
    Nw,
    North,
    Ne,
    West,
    Center,
    East,
    Sw,
    South,
    Se,
}

impl Gravity {
    pub fn parse(s: &str) -> Option<Gravity> {
        Some(match s {
            "nw" => Gravity::Nw,
            "north" => Gravity::North,
            "ne" => Gravity::Ne,
            "west" => Gravity::West,
            "center" => Gravity::Center,
            "east" => Gravity::East,
            "sw" => Gravity::Sw,
            "south" => Gravity::South,
            "se" => Gravity::Se,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Gravity::Nw => "nw",
            Gravity::North => "north",
            Gravity::Ne => "ne",
            Gravity::West => "west",
            Gravity::Center => "center",
            Gravity::East => "east",
            Gravity::Sw => "sw",
            Gravity::South => "south",
            Gravity::Se => "se",
        }
    }
}
