//! DRAW_COMPOSITE.

use spice_proto::display::DrawComposite;
use spice_proto::types::Rect;

use crate::error::CanvasError;
use crate::image::ImageContext;
use crate::region::Area;
use crate::surface::Surfaces;

pub(crate) fn draw_composite(
    _surfaces: &mut Surfaces,
    _images: &mut ImageContext,
    _d: &DrawComposite<'_>,
    _areas: &[Area],
    _b: Option<Area>,
) -> Result<Option<Rect>, CanvasError> {
    Err(CanvasError::NotImplemented("DRAW_COMPOSITE"))
}
