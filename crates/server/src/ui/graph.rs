//! The step graph of a workflow, drawn as SVG on the server: one column per depth (the longest
//! chain of dependencies before a step), so fan-out spreads down a column and fan-in joins in the
//! next one. Pure: it takes the steps and their states and returns markup; the page's live
//! refresh redraws it with new states.

use std::collections::HashMap;
use std::fmt::Write as _;

/// A step as the graph draws it.
pub struct GraphNode<'a> {
    pub name: &'a str,
    pub depends_on: Vec<&'a str>,
    pub state: &'a str,
    /// Where a click on the node goes (the step's log).
    pub link: String,
}

const WIDTH: u32 = 168;
const HEIGHT: u32 = 34;
const GAP_X: u32 = 44;
const GAP_Y: u32 = 12;
const MARGIN: u32 = 4;
/// Characters of a name that fit in a node; longer names are cut with an ellipsis (the full
/// name is in the node's title).
const NAME_CHARS: usize = 20;

/// The column of every node: 0 for nodes without dependencies, else one more than the deepest
/// dependency. Unknown dependencies are ignored; a cycle (refused by the planner, so only in a
/// damaged plan) is cut where it closes.
pub fn depths(nodes: &[GraphNode<'_>]) -> Vec<u32> {
    let index: HashMap<&str, usize> = nodes.iter().enumerate().map(|(position, node)| (node.name, position)).collect();
    let mut depth: Vec<Option<u32>> = vec![None; nodes.len()];
    fn visit(
        node: usize,
        nodes: &[GraphNode<'_>],
        index: &HashMap<&str, usize>,
        depth: &mut [Option<u32>],
        on_path: &mut Vec<bool>,
    ) -> u32 {
        if let Some(known) = depth[node] {
            return known;
        }
        on_path[node] = true;
        let mut deepest = 0;
        for dependency in &nodes[node].depends_on {
            if let Some(&before) = index.get(dependency)
                && !on_path[before]
            {
                deepest = deepest.max(visit(before, nodes, index, depth, on_path) + 1);
            }
        }
        on_path[node] = false;
        depth[node] = Some(deepest);
        deepest
    }
    let mut on_path = vec![false; nodes.len()];
    (0..nodes.len()).map(|node| visit(node, nodes, &index, &mut depth, &mut on_path)).collect()
}

/// The SVG of a workflow's steps (`label` names it for screen readers). Empty when there are no
/// steps.
pub fn render(label: &str, nodes: &[GraphNode<'_>]) -> String {
    if nodes.is_empty() {
        return String::new();
    }
    let depth = depths(nodes);
    // Rows within a column in declaration order.
    let mut rows_used: HashMap<u32, u32> = HashMap::new();
    let positions: Vec<(u32, u32)> = depth
        .iter()
        .map(|&column| {
            let row = rows_used.entry(column).or_insert(0);
            let position = (MARGIN + column * (WIDTH + GAP_X), MARGIN + *row * (HEIGHT + GAP_Y));
            *row += 1;
            position
        })
        .collect();
    let columns = depth.iter().max().copied().unwrap_or(0) + 1;
    let rows = rows_used.values().max().copied().unwrap_or(1);
    let total_width = 2 * MARGIN + columns * WIDTH + (columns - 1) * GAP_X;
    let total_height = 2 * MARGIN + rows * HEIGHT + (rows - 1) * GAP_Y;
    let index: HashMap<&str, usize> = nodes.iter().enumerate().map(|(position, node)| (node.name, position)).collect();

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="graph" xmlns="http://www.w3.org/2000/svg" width="{total_width}" height="{total_height}" viewBox="0 0 {total_width} {total_height}" role="group" aria-label="{}">"#,
        escape(label)
    );
    svg.push_str(r#"<g class="edges" aria-hidden="true">"#);
    for (node, &(x, y)) in nodes.iter().zip(&positions) {
        for dependency in &node.depends_on {
            let Some(&before) = index.get(dependency) else { continue };
            let (from_x, from_y) = positions[before];
            if from_x >= x {
                continue;
            }
            let (start_x, start_y, end_x, end_y) = (from_x + WIDTH, from_y + HEIGHT / 2, x, y + HEIGHT / 2);
            let middle = (start_x + end_x) / 2;
            let _ = write!(svg, r#"<path d="M{start_x} {start_y} C{middle} {start_y} {middle} {end_y} {end_x} {end_y}"/>"#);
        }
    }
    svg.push_str("</g>");
    for ((node, &(x, y)), column) in nodes.iter().zip(&positions).zip(&depth) {
        let name: String = if node.name.chars().count() > NAME_CHARS {
            node.name.chars().take(NAME_CHARS - 1).chain(['…']).collect()
        } else {
            node.name.to_owned()
        };
        let _ = write!(
            svg,
            r#"<a href="{link}" class="node state-{state}" data-step="{name_attr}" data-column="{column}"><title>{name_attr}: {state}</title><rect x="{x}" y="{y}" width="{WIDTH}" height="{HEIGHT}" rx="6"/><circle cx="{dot_x}" cy="{dot_y}" r="5"/><text x="{text_x}" y="{text_y}">{name}</text></a>"#,
            link = escape(&node.link),
            state = escape(node.state),
            name_attr = escape(node.name),
            dot_x = x + 14,
            dot_y = y + HEIGHT / 2,
            text_x = x + 26,
            text_y = y + HEIGHT / 2 + 4,
            name = escape(&name),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Escapes text for an XML attribute or element.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node<'a>(name: &'a str, depends_on: &[&'a str]) -> GraphNode<'a> {
        GraphNode { name, depends_on: depends_on.to_vec(), state: "pending", link: format!("?step={name}") }
    }

    #[test]
    fn a_step_sits_one_column_right_of_its_deepest_dependency() {
        let nodes = [
            node("clone", &[]),
            node("build", &["clone"]),
            node("lint", &["clone"]),
            node("test", &["build", "lint"]),
            node("docs", &["clone"]),
        ];
        assert_eq!(depths(&nodes), [0, 1, 1, 2, 1]);
    }

    #[test]
    fn fan_in_waits_for_the_longest_chain() {
        let nodes = [node("a", &[]), node("b", &["a"]), node("c", &["b"]), node("d", &["a", "c"])];
        assert_eq!(depths(&nodes), [0, 1, 2, 3]);
    }

    #[test]
    fn a_cycle_in_a_damaged_plan_does_not_hang() {
        let nodes = [node("a", &["b"]), node("b", &["a"])];
        let depth = depths(&nodes);
        assert_eq!(depth.len(), 2);
    }

    #[test]
    fn names_are_escaped_and_edges_drawn_per_dependency() {
        let nodes = [node("<clone>", &[]), node("build & \"test\"", &["<clone>"])];
        let svg = render("workflow <x>", &nodes);
        assert!(svg.contains("&lt;clone&gt;"), "{svg}");
        assert!(svg.contains("build &amp; &quot;test&quot;"), "{svg}");
        assert!(!svg.contains("<clone>"), "{svg}");
        assert_eq!(svg.matches("<path ").count(), 1, "{svg}");
        assert!(svg.contains(r#"data-column="1""#), "{svg}");
    }

    #[test]
    fn long_names_are_cut_but_titled_in_full() {
        let long = "a-very-long-step-name-that-does-not-fit";
        let svg = render("w", &[node(long, &[])]);
        assert!(svg.contains(&format!("<title>{long}: pending</title>")), "{svg}");
        assert!(svg.contains("a-very-long-step-na…"), "{svg}");
    }
}
