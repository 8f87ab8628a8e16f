//! The gradient path of an explanation: one run of the image (its plain row for the prediction,
//! saliency, input × gradient, the class activation maps, layer gradients and activations; its
//! guided row for guided backpropagation and Guided Grad-CAM), then the extra rows of Integrated
//! Gradients, SmoothGrad and GradientSHAP (gradient rows), DeepLift (a pair of rows of the DeepLift
//! graph), Occlusion, Feature Ablation, Score-CAM and RISE (forward rows) and Ablation-CAM (tail
//! rows) in engine batches of bounded size, all with the class resolved by the first run.

use std::{sync::Arc, time::Instant};

use ndarray::{Array4, ArrayD, ArrayView2, ArrayView4, Axis, Ix2, Ix4, s};

use super::{
    Call, ExplainError, Explainer, Explanation, ModelInfo, NamedTensor, Stats,
    ablation::{Ablation, Regions},
    ablation_cam::AblationCam,
    baseline, channels,
    deep_lift::DeepLift,
    faithfulness::{CurveEnds, Faithfulness, FaithfulnessRows},
    gradient_shap::GradientShap,
    job::{
        Attribution, Baseline, CamVariant, ExplainJob, FaithfulnessSettings, FeatureMapRequest, LayerQuantity,
        Objective, TargetClass,
    },
    methods, output, prediction,
    rise::Rise,
    rows::{AttributionRows, IntegratedGradients, RowOutputs, RowSet, SmoothGrad, objective_value},
    score_cam::ScoreCam,
    take,
};
use crate::engine::{GraphKind, Output, Outputs, RowSettings};

/// Per-row settings of the gradient graph for rows of one target and objective.
fn row_settings(target: i64, objective: Objective, guided: &[bool]) -> RowSettings {
    RowSettings::new(target, objective == Objective::CrossEntropy, guided)
}

/// `output` of a run as `[N, C, H, W]`.
fn view4(outputs: &Outputs, which: Output) -> Result<ArrayView4<'_, f32>, ExplainError> {
    let array = output(outputs, which)?;
    array.view().into_dimensionality::<Ix4>().map_err(|e| ExplainError::Internal(format!("{which:?}: {e}")))
}

/// `output` of a run as `[N, K]`.
fn view2(outputs: &Outputs, which: Output) -> Result<ArrayView2<'_, f32>, ExplainError> {
    let array = output(outputs, which)?;
    array.view().into_dimensionality::<Ix2>().map_err(|e| ExplainError::Internal(format!("{which:?}: {e}")))
}

/// A run's outputs split into its `rows` rows (batch dimension kept); a one-row run's outputs
/// are moved, not copied.
fn into_rows(outputs: Outputs, rows: usize) -> Vec<Outputs> {
    if rows == 1 {
        return vec![outputs];
    }
    (0..rows)
        .map(|index| {
            outputs
                .iter()
                .map(|(&which, array)| (which, array.slice_axis(Axis(0), (index..index + 1).into()).to_owned()))
                .collect()
        })
        .collect()
}

/// An attribution computed from the image's own run: its plain row's `outputs` and, for the guided
/// methods, its guided row's input gradient.
fn image_attribution(
    info: &ModelInfo,
    attribution: &Attribution,
    input: &Array4<f32>,
    outputs: &Outputs,
    guided_gradient: Option<&ArrayD<f32>>,
) -> Result<NamedTensor, ExplainError> {
    let name = attribution.output_name(info);
    let guided = || {
        guided_gradient
            .ok_or_else(|| ExplainError::Internal(format!("{name} needs the guided row")))?
            .view()
            .into_dimensionality::<Ix4>()
            .map_err(|e| ExplainError::Internal(format!("the guided gradient: {e}")))
    };
    let cam = |layer: usize, variant: CamVariant| {
        let activation = view4(outputs, Output::Activation(layer))?;
        let layer_gradient = view4(outputs, Output::LayerGradient(layer))?;
        methods::class_activation_map(activation, layer_gradient, variant)
            .map_err(|e| ExplainError::Internal(format!("{name}: {e}")))
    };
    let tensor = match attribution {
        Attribution::Saliency { absolute } => methods::saliency(view4(outputs, Output::InputGradient)?, *absolute),
        Attribution::InputXGradient => methods::input_x_gradient(input.view(), view4(outputs, Output::InputGradient)?),
        Attribution::GradCam { layer, upsample, variant } => {
            let map = cam(*layer, *variant)?;
            let (height, width) = info.input_size();
            if *upsample { methods::upsample_bilinear(&map, height, width) } else { map }
        }
        Attribution::GuidedBackprop => guided()?.to_owned(),
        Attribution::GuidedGradCam { layer } => methods::guided_grad_cam(guided()?, &cam(*layer, CamVariant::GradCam)?),
        Attribution::IntegratedGradients { .. }
        | Attribution::Occlusion { .. }
        | Attribution::FeatureAblation { .. }
        | Attribution::ScoreCam { .. }
        | Attribution::GradientShap { .. }
        | Attribution::Rise(_)
        | Attribution::AblationCam { .. }
        | Attribution::DeepLift { .. }
        | Attribution::SmoothGrad { .. } => {
            return Err(ExplainError::Internal(format!("{name} is not computed from the image's run")));
        }
    };
    Ok(NamedTensor { name, tensor: tensor.into_dyn(), channel_indices: Vec::new() })
}

/// What an attribution of the request becomes: computed from the image's own run, or by a row set.
enum Planned {
    FromImage(Attribution),
    Rows(usize),
}

impl Explainer {
    /// Explains `input` (`[1, 3, H, W]`) with attributions (and gradients where they need them).
    pub(super) async fn explain_with_attributions(
        &self,
        job: ExplainJob,
        input: Array4<f32>,
        mut stats: Stats,
        call: &Call,
    ) -> Result<Explanation, ExplainError> {
        if let Some(reason) = self.info.gradients.unavailable().filter(|_| job.needs_gradients()) {
            return Err(ExplainError::GradientsUnavailable(reason.to_owned()));
        }
        // The image's own run: its plain row (saliency, input × gradient, Grad-CAM, layer
        // gradients) and/or its guided row, whose forward pass is the image's, so either predicts;
        // through the head-gradient graph when no gradient before the head layer is needed, and
        // the forward graph alone when only extra rows (IG, SmoothGrad) need gradients.
        let guided = job.attributions.iter().any(Attribution::uses_guided_row);
        let plain = job.feature_maps.iter().any(|f| f.quantity == LayerQuantity::Gradient)
            || job.attributions.iter().any(|attribution| {
                matches!(
                    attribution,
                    Attribution::Saliency { .. }
                        | Attribution::InputXGradient
                        | Attribution::GradCam { .. }
                        | Attribution::GuidedGradCam { .. }
                )
            });
        let (graph, flags) = match (plain, guided) {
            (true, false) => (self.image_graph(&job), vec![false]),
            (true, true) => (GraphKind::Gradient, vec![false, true]),
            (false, true) => (GraphKind::Gradient, vec![true]),
            (false, false) => (GraphKind::Forward, Vec::new()),
        };
        let mut outputs = vec![Output::Logits];
        if graph == GraphKind::Gradient {
            outputs.push(Output::InputGradient);
        }
        let mut want = |output: Output| {
            if !outputs.contains(&output) {
                outputs.push(output);
            }
        };
        for attribution in &job.attributions {
            match attribution {
                Attribution::GradCam { layer, .. } | Attribution::GuidedGradCam { layer } => {
                    want(Output::Activation(*layer));
                    want(Output::LayerGradient(*layer));
                }
                Attribution::ScoreCam { layer, .. } | Attribution::AblationCam { layer, .. } => {
                    want(Output::Activation(*layer));
                }
                Attribution::Saliency { .. }
                | Attribution::InputXGradient
                | Attribution::GuidedBackprop
                | Attribution::IntegratedGradients { .. }
                | Attribution::Occlusion { .. }
                | Attribution::FeatureAblation { .. }
                | Attribution::GradientShap { .. }
                | Attribution::Rise(_)
                | Attribution::DeepLift { .. }
                | Attribution::SmoothGrad { .. } => {}
            }
        }
        for request in &job.feature_maps {
            want(request.output());
        }
        let target = match job.target {
            TargetClass::Predicted => -1,
            TargetClass::Index(index) => index as i64,
        };
        let rows = flags.len().max(1);
        let images = input
            .broadcast((rows, input.dim().1, input.dim().2, input.dim().3))
            .map_or_else(|| input.clone(), |view| view.to_owned());
        let settings = if graph == GraphKind::Forward {
            RowSettings::default()
        } else {
            row_settings(target, job.objective, &flags)
        };
        let image_run = self.run_batch(graph, images, settings, outputs, call).await?;
        stats.add(&image_run);
        let mut image_rows = into_rows(image_run.outputs, rows);
        let guided_gradient = match flags.iter().position(|&flag| flag) {
            Some(index) => Some(
                image_rows[index]
                    .remove(&Output::InputGradient)
                    .ok_or_else(|| ExplainError::Internal("the guided row has no input gradient".into()))?,
            ),
            None => None,
        };
        let image = image_rows.swap_remove(0);
        let prediction = prediction::predict(self.logits(&image)?, job.top_k, job.target, job.objective);
        let target = prediction.target.index;

        // Extra rows, with the class fixed by the image's run.
        let mut row_sets: Vec<Box<dyn AttributionRows>> = Vec::new();
        let mut planned = Vec::with_capacity(job.attributions.len());
        for attribution in job.attributions {
            let name = attribution.output_name(&self.info);
            let rows: Box<dyn AttributionRows> = match attribution {
                Attribution::IntegratedGradients { steps, baseline } => {
                    let start = self.baseline_image(&baseline, &input).await?;
                    Box::new(IntegratedGradients::new(name, input.clone(), start, steps, target, job.objective))
                }
                Attribution::ScoreCam { layer, upsample, .. } => {
                    let activation = view4(&image, Output::Activation(layer))?.to_owned();
                    Box::new(ScoreCam::new(name, input.clone(), activation, upsample, target))
                }
                Attribution::Occlusion { windows, baseline } => {
                    let goal = (target, job.objective);
                    Box::new(self.ablation(name, Regions::Windows(windows), &baseline, &input, &image, goal).await?)
                }
                Attribution::FeatureAblation { segments, baseline } => {
                    let goal = (target, job.objective);
                    Box::new(self.ablation(name, Regions::Segments(segments), &baseline, &input, &image, goal).await?)
                }
                Attribution::SmoothGrad { samples, noise_level, seed, variant } => {
                    Box::new(SmoothGrad::new(name, input.clone(), samples, noise_level, seed, variant))
                }
                Attribution::GradientShap { samples, stdev, seed, baselines } => {
                    let mut images = Vec::with_capacity(baselines.len());
                    for baseline in &baselines {
                        images.push(self.baseline_image(baseline, &input).await?);
                    }
                    Box::new(GradientShap::new(name, input.clone(), images, samples, stdev, seed))
                }
                Attribution::Rise(masks) => Box::new(Rise::new(name, input.clone(), masks, target)),
                Attribution::DeepLift { baseline } => {
                    let reference = self.baseline_image(&baseline, &input).await?;
                    Box::new(DeepLift::new(name, input.clone(), reference, target))
                }
                Attribution::AblationCam { layer, upsample, .. } => {
                    let activation = view4(&image, Output::Activation(layer))?.to_owned();
                    let intact = f64::from(self.logits(&image)?[target]);
                    let size = upsample.then(|| self.info.input_size());
                    Box::new(AblationCam::new(name, (layer, activation), size, (target, intact)))
                }
                attribution @ (Attribution::Saliency { .. }
                | Attribution::InputXGradient
                | Attribution::GradCam { .. }
                | Attribution::GuidedBackprop
                | Attribution::GuidedGradCam { .. }) => {
                    planned.push(Planned::FromImage(attribution));
                    continue;
                }
            };
            planned.push(Planned::Rows(row_sets.len()));
            row_sets.push(rows);
        }
        let mut graphs = vec![GraphKind::Gradient, GraphKind::DeepLift, GraphKind::Forward];
        for graph in row_sets.iter().map(|rows| rows.graph()) {
            if !graphs.contains(&graph) {
                graphs.push(graph);
            }
        }
        for graph in graphs {
            row_sets = self.run_rows(row_sets, graph, (target as i64, job.objective), &mut stats, call).await?;
        }
        let finished = self
            .compute
            .run("folding rows", move || row_sets.into_iter().map(|rows| Some(rows.finish())).collect::<Vec<_>>())
            .await?;

        let started = Instant::now();
        let info = Arc::clone(&self.info);
        let (tensors, image, input) = self
            .compute
            .run("attributions from the image's run", move || {
                let mut finished = finished;
                let mut tensors = Vec::new();
                for plan in planned {
                    match plan {
                        Planned::Rows(index) => tensors.extend(finished[index].take().unwrap_or_default()),
                        Planned::FromImage(attribution) => tensors.push(image_attribution(
                            &info,
                            &attribution,
                            &input,
                            &image,
                            guided_gradient.as_ref(),
                        )?),
                    }
                }
                Ok::<_, ExplainError>((tensors, image, input))
            })
            .await??;
        stats.postprocess += started.elapsed();
        let (mut tensors, faithfulness) = match job.faithfulness {
            Some(settings) => {
                let goal = (target, job.objective);
                self.score_faithfulness(tensors, input, goal, settings, &mut stats, call).await?
            }
            None => (tensors, Vec::new()),
        };
        let started = Instant::now();
        tensors.extend(self.feature_maps(&job.feature_maps, image)?);
        stats.postprocess += started.elapsed();
        Ok(Explanation { prediction, tensors, pictures: Vec::new(), faithfulness, stats })
    }

    /// Scores each attribution map of `tensors` (the `[1, C, h, w]` ones) by deletion and insertion
    /// curves for `target`, in forward rows batched like the methods' own; hands `tensors` back.
    async fn score_faithfulness(
        &self,
        tensors: Vec<NamedTensor>,
        input: Array4<f32>,
        (target, objective): (usize, Objective),
        settings: FaithfulnessSettings,
        stats: &mut Stats,
        call: &Call,
    ) -> Result<(Vec<NamedTensor>, Vec<Faithfulness>), ExplainError> {
        let black = self.baseline_image(&Baseline::Black, &input).await?;
        let blurred = self.baseline_image(&Baseline::Blurred(settings.blur_sigma), &input).await?;
        let first = |image: Array4<f32>| image.index_axis_move(Axis(0), 0);
        let ends = Arc::new(CurveEnds { image: first(input), black: first(black), blurred: first(blurred) });
        let (rows, tensors) = self
            .compute
            .run("ranking pixels", move || {
                let rows = tensors
                    .iter()
                    .filter(|tensor| tensor.tensor.ndim() == 4)
                    .map(|tensor| {
                        let scored =
                            FaithfulnessRows::new(&tensor.name, &tensor.tensor, ends.clone(), target, settings.steps);
                        scored.map(Box::new)
                    })
                    .collect::<Result<Vec<_>, _>>();
                rows.map(|rows| (rows, tensors))
            })
            .await??;
        let rows = self.run_rows(rows, GraphKind::Forward, (target as i64, objective), stats, call).await?;
        Ok((tensors, rows.into_iter().map(|rows| rows.scores()).collect()))
    }

    /// The graph for the image's own run: the head-gradient graph when the job needs no gradient
    /// before the head layer, else the full gradient graph.
    fn image_graph(&self, job: &ExplainJob) -> GraphKind {
        let Some(head) = self.info.head_layer else { return GraphKind::Gradient };
        let attributions_fit = job.attributions.iter().all(|attribution| match attribution {
            Attribution::GradCam { layer, .. } => *layer >= head,
            Attribution::ScoreCam { .. }
            | Attribution::Rise(_)
            | Attribution::AblationCam { .. }
            | Attribution::DeepLift { .. } => true,
            Attribution::Saliency { .. }
            | Attribution::InputXGradient
            | Attribution::GuidedBackprop
            | Attribution::GuidedGradCam { .. }
            | Attribution::IntegratedGradients { .. }
            | Attribution::Occlusion { .. }
            | Attribution::FeatureAblation { .. }
            | Attribution::GradientShap { .. }
            | Attribution::SmoothGrad { .. } => false,
        });
        let layers_fit = job.feature_maps.iter().all(|f| f.quantity == LayerQuantity::Activation || f.layer >= head);
        if attributions_fit && layers_fit { GraphKind::HeadGradient } else { GraphKind::Gradient }
    }

    /// The requested layer tensors, channels selected (gradients ranked by mean |value|), each
    /// moved out of `outputs`: requests were validated to name distinct tensors.
    pub(super) fn feature_maps(
        &self,
        requests: &[FeatureMapRequest],
        mut outputs: Outputs,
    ) -> Result<Vec<NamedTensor>, ExplainError> {
        requests
            .iter()
            .map(|request| {
                let values = take(&mut outputs, request.output())?;
                let selected = match request.quantity {
                    LayerQuantity::Activation => channels::select(values, &request.channels, |v| v),
                    LayerQuantity::Gradient => channels::select(values, &request.channels, f32::abs),
                };
                Ok(NamedTensor {
                    name: request.output_name(&self.info),
                    tensor: selected.tensor,
                    channel_indices: selected.indices,
                })
            })
            .collect()
    }

    /// The rows of Occlusion or Feature Ablation over `regions` of `input`, filled from `baseline`;
    /// `image` holds the image's own logits.
    async fn ablation(
        &self,
        name: String,
        regions: Regions,
        baseline: &Baseline,
        input: &Array4<f32>,
        image: &Outputs,
        (target, objective): (usize, Objective),
    ) -> Result<Ablation, ExplainError> {
        let fill = self.baseline_image(baseline, input).await?;
        let intact = objective_value(self.logits(image)?, target, objective);
        Ok(Ablation::new(name, (input.clone(), fill), regions, (target, objective), intact))
    }

    /// The image `baseline` makes of `input`, computed on the compute pool.
    async fn baseline_image(&self, baseline: &Baseline, input: &Array4<f32>) -> Result<Array4<f32>, ExplainError> {
        let (baseline, image, preprocessing) = (baseline.clone(), input.clone(), self.info.preprocessing.clone());
        self.compute.run("the baseline", move || baseline::baseline(&baseline, &image, &preprocessing)).await
    }

    /// Runs every row of the sets of `row_sets` whose rows go through `graph` (the gradient graph
    /// for `(target, objective)`, or the forward graph) in batches of at most the engine's batch
    /// size, filling each batch from successive sets and handing the outputs back to the set they
    /// belong to; filling and folding run on the compute pool. Returns every set.
    async fn run_rows<Rows: RowSet + ?Sized + 'static>(
        &self,
        mut row_sets: Vec<Box<Rows>>,
        graph: GraphKind,
        (target, objective): (i64, Objective),
        stats: &mut Stats,
        call: &Call,
    ) -> Result<Vec<Box<Rows>>, ExplainError> {
        let order: Vec<usize> = (0..row_sets.len()).filter(|&set| row_sets[set].graph() == graph).collect();
        let total: usize = order.iter().map(|&set| row_sets[set].len()).sum();
        // A row is an image, or for a tail graph the layer's activation.
        let (channels, height, width) = match graph {
            GraphKind::Tail(layer) => match self.info.layers[layer].shape.as_slice() {
                &[channels, height, width] => (channels, height, width),
                shape => return Err(ExplainError::Internal(format!("a tail after a layer of shape {shape:?}"))),
            },
            GraphKind::Forward | GraphKind::Gradient | GraphKind::HeadGradient | GraphKind::DeepLift => {
                let (height, width) = self.info.input_size();
                (3, height, width)
            }
        };
        // The DeepLift graph's rows are pairs: its batches hold whole pairs.
        let most = match graph {
            GraphKind::DeepLift => self.batching.max_batch_size.max(2) / 2 * 2,
            GraphKind::Forward | GraphKind::Gradient | GraphKind::HeadGradient | GraphKind::Tail(_) => {
                self.batching.max_batch_size.max(1)
            }
        };
        // (set, first row of the set in this batch, offset in the batch, rows) for each piece of
        // the next batch; the cursor is (position in `order`, next row of that set).
        let mut cursor = (0_usize, 0_usize);
        let mut done = 0;
        while done < total {
            let size = (total - done).min(most);
            let order = order.clone();
            let (sets, images, pieces, next) = self
                .compute
                .run("filling rows", move || {
                    let mut images = Array4::<f32>::zeros((size, channels, height, width));
                    let (mut pieces, mut filled, mut cursor) = (Vec::new(), 0, cursor);
                    while filled < size {
                        let (position, start) = cursor;
                        let set = order[position];
                        let count = (row_sets[set].len() - start).min(size - filled);
                        row_sets[set].fill(start, images.slice_mut(s![filled..filled + count, .., .., ..]));
                        pieces.push((set, start, filled, count));
                        filled += count;
                        cursor = if start + count == row_sets[set].len() {
                            (position + 1, 0)
                        } else {
                            (position, start + count)
                        };
                    }
                    (row_sets, images, pieces, cursor)
                })
                .await?;
            cursor = next;
            let ran = match graph {
                GraphKind::Forward | GraphKind::Tail(_) => {
                    self.run_batch(graph, images, RowSettings::default(), vec![Output::Logits], call).await?
                }
                GraphKind::Gradient | GraphKind::HeadGradient | GraphKind::DeepLift => {
                    let settings = row_settings(target, objective, &vec![false; size]);
                    self.run_batch(graph, images, settings, vec![Output::Logits, Output::InputGradient], call).await?
                }
            };
            stats.add(&ran);
            row_sets = self
                .compute
                .run("folding rows", move || {
                    let mut sets = sets;
                    let gradients = match graph {
                        GraphKind::Forward | GraphKind::Tail(_) => None,
                        GraphKind::Gradient | GraphKind::HeadGradient | GraphKind::DeepLift => {
                            Some(view4(&ran.outputs, Output::InputGradient)?)
                        }
                    };
                    let logits = view2(&ran.outputs, Output::Logits)?;
                    for (set, start, offset, count) in pieces {
                        let range = offset..offset + count;
                        let outputs = RowOutputs {
                            logits: logits.slice(s![range.clone(), ..]),
                            gradients: gradients.as_ref().map(|g| g.slice(s![range, .., .., ..])),
                        };
                        sets[set].absorb(start, outputs)?;
                    }
                    Ok::<_, ExplainError>(sets)
                })
                .await??;
            done += size;
        }
        Ok(row_sets)
    }
}
