//! Images in and out of explain, shared by the service and the SDK's command-line tools, owned by
//! neither: [`preprocess`] turns an encoded image into the model's view and its normalised tensor
//! (bounded before anything is decoded or resized), [`render`] draws attribution heatmaps over that
//! view and feature maps as grids.

pub mod preprocess;
pub mod render;
