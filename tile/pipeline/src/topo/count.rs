//! `count = N`: one `[[tile]]` made N tiles sharing its inputs' work.

use tilewire_tile::link::LINK_NAME_MAX;
use tilewire_tile::stem::TILE_NAME_MAX;

use super::error::TopoError;
use super::spec::{LinkSpec, ShareSpec, TileSpec};
use super::value::Loc;

/// Makes the tiles a `count` asks for: tile `T` with `count = N` becomes
/// `T.0` .. `T.N-1`, each with its [`ShareSpec`], and each of its output
/// links `L` becomes `L.0` .. `L.N-1` (one producer each), which every
/// tile listing `L` as an input reads instead, in that order. A `count`
/// of 1 changes nothing.
pub(crate) fn expand(
    links: Vec<LinkSpec>,
    tiles: Vec<TileSpec>,
    errors: &mut Vec<TopoError>,
) -> (Vec<LinkSpec>, Vec<TileSpec>) {
    let counted = |t: &TileSpec| t.share.filter(|s| s.of > 1);
    // Output links of counted tiles, and into how many they split.
    let split: Vec<(String, u32, Loc)> = tiles
        .iter()
        .filter_map(|t| counted(t).map(|s| (t, s.of)))
        .flat_map(|(t, n)| t.outputs.iter().map(move |o| (o.clone(), n, t.at.count)))
        .collect();
    let mut new_links = Vec::with_capacity(links.len());
    for l in links {
        let Some((_, n, at)) = split.iter().find(|(name, _, _)| *name == l.name) else {
            new_links.push(l);
            continue;
        };
        for i in 0..*n {
            let name = format!("{}.{i}", l.name);
            if name.len() > LINK_NAME_MAX {
                errors.push(at.err(format!(
                    "link {name:?}, one of the {n} this count makes of link {:?}, is longer \
                     than {LINK_NAME_MAX} bytes; give the link a shorter name",
                    l.name
                )));
            }
            new_links.push(LinkSpec { name, ..l.clone() });
        }
    }
    let mut new_tiles = Vec::with_capacity(tiles.len());
    for mut t in tiles {
        // Inputs from a counted tile: one per tile it became, in order.
        let (mut inputs, mut locs) = (Vec::new(), Vec::new());
        for (name, at) in t.inputs.iter().zip(&t.at.inputs) {
            match split.iter().find(|(l, _, _)| l == name) {
                Some((_, n, _)) => {
                    for i in 0..*n {
                        inputs.push(format!("{name}.{i}"));
                        locs.push(*at);
                    }
                }
                None => {
                    inputs.push(name.clone());
                    locs.push(*at);
                }
            }
        }
        t.inputs = inputs;
        t.at.inputs = locs;
        let Some(share) = counted(&t) else {
            t.share = None;
            new_tiles.push(t);
            continue;
        };
        for i in 0..share.of {
            let name = format!("{}.{i}", t.name);
            if name.len() > TILE_NAME_MAX {
                errors.push(t.at.count.err(format!(
                    "tile {name:?}, one of the {} this count makes of tile {:?}, is longer \
                     than {TILE_NAME_MAX} bytes; give the tile a shorter name",
                    share.of, t.name
                )));
            }
            let mut one = t.clone();
            one.name = name;
            one.outputs = t.outputs.iter().map(|o| format!("{o}.{i}")).collect();
            one.share = Some(ShareSpec { index: i, ..share });
            // A core each: `cpu`, `cpu + 1`, ...
            one.cpu = t.cpu.map(|c| c + i as usize);
            new_tiles.push(one);
        }
    }
    (new_links, new_tiles)
}
