//! DeepLift's rescale rule (Shrikumar et al. 2017) in place of the gradient at the nonlinearities,
//! as Captum's `DeepLift` applies it. The batch holds pairs of rows: each input is followed by its
//! reference (baseline), and every rule reads the other row of its pair ([`Pairs`]).
//!
//! - Elementwise nonlinearities (Relu, LeakyRelu, Clip and the activations of `elementwise.rs`:
//!   Sigmoid, Tanh, HardSigmoid, HardSwish, Erf, Sqrt, Pow): the multiplier is
//!   g · (y − y′) / (x − x′), where x′, y′ are the pair's other row; where |x − x′| < 10⁻¹⁰, the
//!   gradient.
//! - MaxPool: each pool output's difference g · (max(y, y′) − y′) is sent back to the position of
//!   the input row's maximum, and g · (y − max(y, y′)) to the reference's; the two are added
//!   (overlapping windows add up, as in the gradient) and divided by the input difference.
//!
//! Linear ops keep their gradient rules, so the input row's "gradient" is DeepLift's multiplier:
//! (x − x′) times it sums to f(x) − f(x′).

use explain_proto::onnx::NodeProto;

use super::{
    AugmentError, TARGET_INPUT,
    rules::{Rules, unsupported},
    spatial,
};
use crate::graph;

/// Below this input difference a nonlinearity keeps its gradient (Captum's `eps`).
const EPSILON: f32 = 1e-10;

/// Per-row tensors that pair each row with the other row of its pair.
#[derive(Clone, Debug)]
pub(super) struct Pairs {
    /// int64 `[N]`: the index of each row's partner (row 2k ↔ 2k + 1).
    partner: String,
    /// float `[N, 1, 1, 1]`: +1 on input rows (even), −1 on reference rows (odd).
    sign: String,
}

impl Pairs {
    /// Emits the pairing of the batch's rows, from the length of the per-row target input.
    pub(super) fn emit(emit: &mut super::emit::Emitter) -> Self {
        let (zero, one, two) = (emit.ints(&[], &[0]), emit.ints(&[], &[1]), emit.ints(&[], &[2]));
        let shape = emit.op("Shape", &[TARGET_INPUT], vec![]);
        let count = emit.op("Gather", &[&shape, &zero], vec![graph::attr_int("axis", 0)]);
        let rows = emit.op("Range", &[&zero, &count, &one], vec![]);
        let parity = emit.op("Mod", &[&rows, &two], vec![]);
        let twice = emit.op("Mul", &[&parity, &two], vec![]);
        let next = emit.op("Add", &[&rows, &one], vec![]);
        let partner = emit.op("Sub", &[&next, &twice], vec![]);
        let signs = emit.op("Sub", &[&one, &twice], vec![]);
        let signs = emit.op("Cast", &[&signs], vec![graph::attr_int("to", graph::DataType::Float as i64)]);
        let sign = emit.reshape_to(&signs, &[-1, 1, 1, 1]);
        Self { partner, sign }
    }

    /// The partner row of every row of `tensor`.
    fn partner_of(&self, rules: &mut Rules<'_>, tensor: &str) -> String {
        rules.emit.op("Gather", &[tensor, &self.partner], vec![graph::attr_int("axis", 0)])
    }

    /// `tensor` minus its partner rows.
    fn difference(&self, rules: &mut Rules<'_>, tensor: &str) -> String {
        let partner = self.partner_of(rules, tensor);
        rules.emit.op("Sub", &[tensor, &partner], vec![])
    }

    /// `Where(|difference| < ε, plain, value)`.
    fn unless_unchanged(rules: &mut Rules<'_>, difference: &str, plain: &str, value: &str) -> String {
        let epsilon = rules.emit.scalar(EPSILON);
        let size = rules.emit.op("Abs", &[difference], vec![]);
        let unchanged = rules.emit.op("Less", &[&size, &epsilon], vec![]);
        rules.emit.op("Where", &[&unchanged, plain, value], vec![])
    }

    /// The rescale rule of an elementwise op with input `x` and output `y`, given the gradient of
    /// `y` and the op's own gradient rule's result `plain`.
    pub(super) fn rescale(&self, rules: &mut Rules<'_>, (x, y): (&str, &str), grad: &str, plain: &str) -> String {
        let input_difference = self.difference(rules, x);
        let output_difference = self.difference(rules, y);
        let scaled = rules.emit.op("Mul", &[grad, &output_difference], vec![]);
        let ratio = rules.emit.op("Div", &[&scaled, &input_difference], vec![]);
        Self::unless_unchanged(rules, &input_difference, plain, &ratio)
    }

    /// MaxPool's rule (see the module's documentation), given the pool's gradient rule's result
    /// `plain`.
    pub(super) fn max_pool(
        &self,
        rules: &mut Rules<'_>,
        node: &NodeProto,
        grad: &str,
        plain: &str,
    ) -> Result<String, AugmentError> {
        let (x, y) = (node.input[0].as_str(), node.output[0].as_str());
        if rules.shape(x)?.len() != 4 {
            return Err(unsupported(node, "DeepLift's pairing of rows needs a 2-d pool"));
        }
        let partner_output = self.partner_of(rules, y);
        let larger = rules.emit.op("Max", &[y, &partner_output], vec![]);
        // Input rows send g · (max − y′) to their maxima, reference rows −g · (max − y′) to theirs.
        let gain = rules.emit.op("Sub", &[&larger, &partner_output], vec![]);
        let gain = rules.emit.op("Mul", &[&gain, &self.sign], vec![]);
        let sent = rules.emit.op("Mul", &[grad, &gain], vec![]);
        let own = spatial::scatter_to_maxima(rules, node, &sent)?;
        let partner_sent = self.partner_of(rules, &own);
        let both = rules.emit.op("Add", &[&own, &partner_sent], vec![]);
        // The input difference x − x′ of the pair, the same on both rows.
        let difference = self.difference(rules, x);
        let difference = rules.emit.op("Mul", &[&difference, &self.sign], vec![]);
        let ratio = rules.emit.op("Div", &[&both, &difference], vec![]);
        Ok(Self::unless_unchanged(rules, &difference, plain, &ratio))
    }
}
