//! Dependency graphs of steps and of workflows: cycles, named in the order they close.

/// Finds a cycle in a graph given as `(name, dependencies)`; returns its names with the first
/// repeated at the end (`a → b → a`). Dependencies on unknown names are ignored here.
pub fn find_cycle(nodes: &[(&str, Vec<&str>)]) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let positions: std::collections::HashMap<&str, usize> = nodes.iter().enumerate().map(|(index, (name, _))| (*name, index)).collect();
    let index_of = |name: &str| positions.get(name).copied();
    let mut marks = vec![Mark::New; nodes.len()];
    let mut path: Vec<usize> = Vec::new();
    // Iterative depth-first search: pipelines can be thousands of steps deep.
    for start in 0..nodes.len() {
        if marks[start] != Mark::New {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        marks[start] = Mark::Open;
        path.push(start);
        while let Some((node, next_edge)) = stack.last_mut() {
            let node = *node;
            let dependencies = &nodes[node].1;
            if *next_edge < dependencies.len() {
                let dependency = dependencies[*next_edge];
                *next_edge += 1;
                let Some(target) = index_of(dependency) else { continue };
                match marks[target] {
                    Mark::New => {
                        marks[target] = Mark::Open;
                        path.push(target);
                        stack.push((target, 0));
                    }
                    Mark::Open => {
                        let from = path.iter().position(|&entry| entry == target).unwrap_or(0);
                        let mut cycle: Vec<String> = path[from..].iter().map(|&entry| nodes[entry].0.to_owned()).collect();
                        cycle.push(nodes[target].0.to_owned());
                        return Some(cycle);
                    }
                    Mark::Done => {}
                }
            } else {
                marks[node] = Mark::Done;
                path.pop();
                stack.pop();
            }
        }
    }
    None
}
