//! Milan's 88 NIL as SVG paths, projected from the CRS84 GeoJSON shipped in
//! `culla-schemas`.
//!
//! The projection is equirectangular around the city's mean latitude (longitudes
//! scaled by its cosine), which at a city's scale is indistinguishable from a
//! conformal one and keeps the code small. Coordinates are rounded to 0.1 px; the paths
//! are computed once per process and shared by the report and the dashboard.

use std::sync::LazyLock;

/// Width of the map's SVG view box; the height follows from the city's shape.
pub const MAP_WIDTH: f64 = 600.0;

/// One NIL outline, ready for an SVG `<path d="…">`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NilShape {
    /// NIL id, 1–88 (`IDquartiere`).
    pub nil: i32,
    /// Name in the boundary layer.
    pub name: String,
    /// SVG path data (absolute moves and lines, closed rings).
    pub d: String,
    /// Label anchor: the mean of the outer ring's vertices.
    pub cx: f64,
    /// Label anchor, vertical.
    pub cy: f64,
}

/// The projected map: shapes sorted by NIL id and the view box height.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NilMap {
    /// View box width.
    pub width: f64,
    /// View box height.
    pub height: f64,
    /// One shape per NIL.
    pub shapes: Vec<NilShape>,
}

static MAP: LazyLock<NilMap> =
    LazyLock::new(|| project(culla_schemas::reference::boundaries_geojson()));

/// The 88 NIL of Milan, projected (computed once).
pub fn nil_map() -> &'static NilMap {
    &MAP
}

type Ring = Vec<(f64, f64)>;

fn rings_of(geometry: &serde_json::Value) -> Vec<Ring> {
    let to_ring = |r: &serde_json::Value| -> Ring {
        r.as_array()
            .map(|pts| {
                pts.iter()
                    .filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let coords = &geometry["coordinates"];
    match geometry["type"].as_str() {
        Some("Polygon") => coords
            .as_array()
            .map(|rs| rs.iter().map(to_ring).collect())
            .unwrap_or_default(),
        Some("MultiPolygon") => coords
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter_map(|p| p.as_array())
                    .flat_map(|rs| rs.iter().map(to_ring))
                    .collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Projects a GeoJSON FeatureCollection of NIL polygons (property `IDquartiere`).
pub fn project(geojson: &str) -> NilMap {
    let v: serde_json::Value = serde_json::from_str(geojson).unwrap_or_default();
    let features: Vec<(i32, String, Vec<Ring>)> = v["features"]
        .as_array()
        .map(|fs| {
            fs.iter()
                .filter_map(|f| {
                    let p = &f["properties"];
                    let id = p["IDquartiere"].as_i64()? as i32;
                    let name = p["quartiere"].as_str().unwrap_or_default().to_string();
                    Some((id, name, rings_of(&f["geometry"])))
                })
                .collect()
        })
        .unwrap_or_default();
    let (mut min_x, mut max_x, mut min_y, mut max_y) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for (_, _, rings) in &features {
        for &(x, y) in rings.iter().flatten() {
            min_x = min_x.min(x);
            max_x = max_x.max(x);
            min_y = min_y.min(y);
            max_y = max_y.max(y);
        }
    }
    if !min_x.is_finite() {
        return NilMap {
            width: MAP_WIDTH,
            height: MAP_WIDTH,
            shapes: Vec::new(),
        };
    }
    let kx = ((min_y + max_y) / 2.0).to_radians().cos();
    let span_x = ((max_x - min_x) * kx).max(1e-9);
    let scale = MAP_WIDTH / span_x;
    let height = ((max_y - min_y) * scale).ceil();
    let px = |(x, y): (f64, f64)| ((x - min_x) * kx * scale, (max_y - y) * scale);
    let mut shapes: Vec<NilShape> = features
        .into_iter()
        .map(|(nil, name, rings)| {
            let mut d = String::new();
            for ring in &rings {
                for (i, &p) in ring.iter().enumerate() {
                    let (x, y) = px(p);
                    d.push(if i == 0 { 'M' } else { 'L' });
                    d.push_str(&format!("{x:.1},{y:.1}"));
                }
                d.push('Z');
            }
            let outer = rings.first().cloned().unwrap_or_default();
            let n = outer.len().max(1) as f64;
            let (sx, sy) = outer.iter().fold((0.0, 0.0), |(a, b), &p| {
                let (x, y) = px(p);
                (a + x, b + y)
            });
            NilShape {
                nil,
                name,
                d,
                cx: sx / n,
                cy: sy / n,
            }
        })
        .collect();
    shapes.sort_by_key(|s| s.nil);
    NilMap {
        width: MAP_WIDTH,
        height,
        shapes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milan_projects_to_88_shapes_inside_the_view_box() {
        let m = nil_map();
        assert_eq!(m.shapes.len(), 88);
        let ids: Vec<i32> = m.shapes.iter().map(|s| s.nil).collect();
        assert_eq!(ids, (1..=88).collect::<Vec<_>>());
        // Milan is roughly as tall as it is wide (about 15 km × 13 km).
        assert!(m.height > 400.0 && m.height < 700.0, "height {}", m.height);
        for s in &m.shapes {
            assert!(s.d.starts_with('M') && s.d.ends_with('Z'));
            assert!(s.cx >= 0.0 && s.cx <= MAP_WIDTH && s.cy >= 0.0 && s.cy <= m.height);
        }
    }

    #[test]
    fn a_unit_square_fills_the_width() {
        let g = r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"IDquartiere":1,"quartiere":"A"},"geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1],[0,0]]]}}]}"#;
        let m = project(g);
        assert_eq!(m.shapes.len(), 1);
        // At latitude 0.5° the x scale is cos(0.5°) = 0.99996, so 1° is 600.02 px:
        // the box is 600 wide and ceil(600.02) = 601 high.
        assert_eq!(m.height, 601.0);
        assert!(m.shapes[0].d.starts_with("M0.0,600."));
    }
}
