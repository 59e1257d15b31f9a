//! Groups of subsets that pairwise overlap: the maximal cliques of the
//! "intersects" graph, in Kuma's order.

use crate::subset::Subset;

/// Maximal cliques of the graph whose nodes are `subsets` and whose edges
/// join intersecting subsets. Each clique lists its nodes ascending; cliques
/// are ordered by their node lists joined with `:` compared as text,
/// descending, which is the order Kuma emits rules in.
pub fn maximal_cliques(subsets: &[Subset]) -> Vec<Vec<usize>> {
    let n = subsets.len();
    let mut adjacent = vec![vec![false; n]; n];
    for i in 0..n {
        for j in (i + 1)..n {
            if subsets[i].intersects(&subsets[j]) {
                adjacent[i][j] = true;
                adjacent[j][i] = true;
            }
        }
    }
    let mut cliques = Vec::new();
    let all: Vec<usize> = (0..n).collect();
    bron_kerbosch(&adjacent, Vec::new(), all, Vec::new(), &mut cliques);
    for c in &mut cliques {
        c.sort_unstable();
    }
    let label = |c: &Vec<usize>| c.iter().map(usize::to_string).collect::<Vec<_>>().join(":");
    cliques.sort_by_cached_key(|c| std::cmp::Reverse(label(c)));
    cliques
}

/// Bron–Kerbosch with pivoting: `r` is the clique being grown, `p` the
/// nodes that may extend it, `x` those already tried.
fn bron_kerbosch(
    adjacent: &[Vec<bool>],
    r: Vec<usize>,
    mut p: Vec<usize>,
    mut x: Vec<usize>,
    out: &mut Vec<Vec<usize>>,
) {
    if p.is_empty() {
        if x.is_empty() {
            out.push(r);
        }
        return;
    }
    let pivot = p
        .iter()
        .chain(x.iter())
        .copied()
        .max_by_key(|&u| p.iter().filter(|&&v| adjacent[u][v]).count())
        .unwrap_or(p[0]);
    let candidates: Vec<usize> = p.iter().copied().filter(|&v| !adjacent[pivot][v]).collect();
    for v in candidates {
        let mut next_r = r.clone();
        next_r.push(v);
        let next_p = p.iter().copied().filter(|&u| adjacent[v][u]).collect();
        let next_x = x.iter().copied().filter(|&u| adjacent[v][u]).collect();
        bron_kerbosch(adjacent, next_r, next_p, next_x, out);
        p.retain(|&u| u != v);
        x.push(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subset::Tag;

    fn ss(tags: &[(&str, &str)]) -> Subset {
        Subset(tags.iter().map(|(k, v)| Tag::new(k, v)).collect())
    }

    #[test]
    fn conflicting_values_split_cliques_mesh_joins_all() {
        let subsets = vec![
            Subset::mesh(),
            ss(&[("app", "web")]),
            ss(&[("app", "api")]),
            ss(&[("version", "v1")]),
        ];
        let got = maximal_cliques(&subsets);
        assert_eq!(got, vec![vec![0, 2, 3], vec![0, 1, 3]]);
    }

    #[test]
    fn isolated_nodes_are_cliques_and_order_is_textual() {
        let subsets: Vec<Subset> = (0..11).map(|i| ss(&[("k", &i.to_string())])).collect();
        let got = maximal_cliques(&subsets);
        assert_eq!(got.len(), 11);
        // "9" > "10" > "1" > "0" as text
        assert_eq!(got[0], vec![9]);
        assert_eq!(got[8], vec![10]);
        assert_eq!(got[9], vec![1]);
        assert_eq!(got[10], vec![0]);
    }
}
