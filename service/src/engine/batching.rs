//! Dynamic batching, in Triton's manner: the engine merges the row batches of waiting jobs that
//! run the same graph into one run of at most `max_batch_size` rows, waiting at most
//! `max_queue_delay` after the oldest job arrived for more to come, then gives each job its rows.

use std::time::Duration;

use ndarray::{Axis, concatenate};

use super::backend::{BackendError, Batch, Output, Outputs, RowSettings};

/// Batching policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Most rows in one engine run (a single larger job still runs, alone).
    pub max_batch_size: usize,
    /// Longest the oldest waiting job is held back for others to join its run.
    pub max_queue_delay: Duration,
}

impl BatchPolicy {
    /// The most rows per run when none is configured, by execution provider. On CPU, runs of
    /// 8 rows are as fast per row as larger ones, and the memory a gradient run holds grows with
    /// its rows (ResNet-18 at 224²: a peak of 0.65 GiB with 8, 1.4 GiB with 32; docs/benchmarks.md);
    /// a GPU wants larger batches to be kept busy.
    pub fn default_max_batch_size(execution_provider: &str) -> usize {
        if execution_provider == <ort::ep::CUDA as ort::ep::ExecutionProvider>::NAME { 64 } else { 8 }
    }
}

/// Merges batches of one graph, in order, into one: rows concatenated, per-row settings
/// concatenated, outputs the union. Returns the merged batch and each part's row range.
fn merge(parts: &[&Batch]) -> Result<(Batch, Vec<std::ops::Range<usize>>), BackendError> {
    let mut ranges = Vec::with_capacity(parts.len());
    let mut start = 0;
    for part in parts {
        let rows = part.images.len_of(Axis(0));
        ranges.push(start..start + rows);
        start += rows;
    }
    let first = parts.first().ok_or_else(|| BackendError::Run("an empty batch".into()))?;
    let views: Vec<_> = parts.iter().map(|part| part.images.view()).collect();
    let images = concatenate(Axis(0), &views).map_err(|e| BackendError::Run(format!("cannot merge batches: {e}")))?;
    let mut settings = RowSettings::default();
    parts.iter().for_each(|part| settings.extend(&part.settings));
    let mut outputs: Vec<Output> = Vec::new();
    for &output in parts.iter().flat_map(|part| part.outputs.iter()) {
        if !outputs.contains(&output) {
            outputs.push(output);
        }
    }
    Ok((Batch { graph: first.graph, images, settings, outputs }, ranges))
}

/// Runs `parts` (of one graph) as one batch through `run` and gives each part the outputs it
/// asked for, its rows only, in order; also returns the rows run. A single part — every run of a
/// lone caller — is run as it is and takes the arrays themselves; merged parts get copies of their
/// rows. An output without a row per input row fails the run (an error, never a panic).
pub(super) fn run_as_one(
    parts: &[&Batch],
    run: impl FnOnce(&Batch) -> Result<Outputs, BackendError>,
) -> Result<(Vec<Result<Outputs, BackendError>>, usize), BackendError> {
    if let [part] = parts {
        let rows = part.images.len_of(Axis(0));
        let mut outputs = check_rows(run(part)?, rows)?;
        outputs.retain(|output, _| part.outputs.contains(output));
        let own = match part.outputs.iter().find(|output| !outputs.contains_key(output)) {
            Some(&missing) => Err(BackendError::UnknownOutput(missing)),
            None => Ok(outputs),
        };
        return Ok((vec![own], rows));
    }
    let (merged, ranges) = merge(parts)?;
    let rows = merged.images.len_of(Axis(0));
    let outputs = check_rows(run(&merged)?, rows)?;
    let answers = parts.iter().zip(ranges).map(|(part, range)| split(&outputs, range, &part.outputs)).collect();
    Ok((answers, rows))
}

/// `outputs`, if every one has `rows` rows.
fn check_rows(outputs: Outputs, rows: usize) -> Result<Outputs, BackendError> {
    match outputs.iter().find(|(_, array)| array.shape().first() != Some(&rows)) {
        Some((output, array)) => {
            Err(BackendError::Run(format!("{output:?} has shape {:?}, not {rows} rows", array.shape())))
        }
        None => Ok(outputs),
    }
}

/// The rows `range` of the outputs `wanted`.
fn split(outputs: &Outputs, range: std::ops::Range<usize>, wanted: &[Output]) -> Result<Outputs, BackendError> {
    wanted
        .iter()
        .map(|&output| {
            let array = outputs.get(&output).ok_or(BackendError::UnknownOutput(output))?;
            Ok((output, array.slice_axis(Axis(0), range.clone().into()).to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use ndarray::{Array4, ArrayD, IxDyn};

    use super::*;
    use crate::engine::GraphKind;

    fn batch(rows: usize, fill: f32, outputs: &[Output]) -> Batch {
        Batch {
            graph: GraphKind::Gradient,
            images: Array4::from_elem((rows, 3, 2, 2), fill),
            settings: RowSettings::new(fill as i64, false, &vec![fill > 1.0; rows]),
            outputs: outputs.to_vec(),
        }
    }

    #[test]
    fn merging_concatenates_rows_settings_and_outputs() {
        let a = batch(2, 1.0, &[Output::Logits, Output::InputGradient]);
        let b = batch(3, 2.0, &[Output::Logits, Output::Activation(3)]);
        let (merged, ranges) = merge(&[&a, &b]).expect("merge");
        assert_eq!(merged.images.shape(), &[5, 3, 2, 2]);
        assert_eq!(merged.images[[4, 0, 0, 0]], 2.0);
        assert_eq!(merged.settings.target, [1, 1, 2, 2, 2]);
        assert_eq!(merged.settings.guided, [false, false, true, true, true]);
        assert_eq!(merged.outputs, [Output::Logits, Output::InputGradient, Output::Activation(3)]);
        assert_eq!(ranges, [0..2, 2..5]);
    }

    #[test]
    fn splitting_gives_each_job_its_rows_and_outputs() {
        let logits = ArrayD::from_shape_fn(IxDyn(&[5, 2]), |i| i[0] as f32);
        let outputs: Outputs =
            HashMap::from([(Output::Logits, logits), (Output::Activation(0), ArrayD::zeros(IxDyn(&[5, 1])))]);
        let part = split(&outputs, 2..5, &[Output::Logits]).expect("split");
        assert_eq!(part.len(), 1);
        let column: Vec<f32> = part[&Output::Logits].index_axis(ndarray::Axis(1), 0).iter().copied().collect();
        assert_eq!(column, [2.0, 3.0, 4.0]);
        assert!(split(&outputs, 0..1, &[Output::LayerGradient(0)]).is_err());
    }

    #[test]
    fn a_lone_batch_runs_as_it_is_and_takes_its_arrays_merged_ones_get_their_rows() {
        let lone = batch(2, 1.0, &[Output::Logits]);
        let mut produced = None;
        let (answers, rows) = run_as_one(&[&lone], |run| {
            assert!(std::ptr::eq(run, &lone), "a lone batch is run as it is, not copied");
            let logits = ArrayD::from_elem(IxDyn(&[2, 3]), 1.0);
            produced = Some(logits.as_ptr());
            Ok(HashMap::from([(Output::Logits, logits), (Output::InputGradient, ArrayD::zeros(IxDyn(&[2, 3, 2, 2])))]))
        })
        .expect("run");
        assert_eq!(rows, 2);
        let outputs = answers.into_iter().next().expect("one answer").expect("its outputs");
        assert_eq!(outputs.keys().collect::<Vec<_>>(), [&Output::Logits], "only what it asked for");
        assert_eq!(Some(outputs[&Output::Logits].as_ptr()), produced, "the array itself, not a copy");
        let asking = batch(1, 1.0, &[Output::Activation(0)]);
        let (answers, _) = run_as_one(&[&asking], |_| Ok(Outputs::new())).expect("run");
        assert!(matches!(answers[0], Err(BackendError::UnknownOutput(Output::Activation(0)))));

        let (a, b) = (batch(2, 1.0, &[Output::Logits]), batch(1, 2.0, &[Output::Logits, Output::Activation(0)]));
        let (answers, rows) = run_as_one(&[&a, &b], |merged| {
            let n = merged.images.len_of(Axis(0));
            Ok(HashMap::from([(Output::Logits, ArrayD::from_shape_fn(IxDyn(&[n, 1]), |i| i[0] as f32))]))
        })
        .expect("run");
        assert_eq!(rows, 3);
        let first: Vec<f32> = answers[0].as_ref().expect("a's rows")[&Output::Logits].iter().copied().collect();
        assert_eq!(first, [0.0, 1.0]);
        assert!(
            matches!(answers[1], Err(BackendError::UnknownOutput(Output::Activation(0)))),
            "b's output was not run"
        );
    }
}
