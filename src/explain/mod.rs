//! Saliency for embedding networks: Grad-CAM (similarity target), Grad-CAM with
//! weight transfer, similarity decomposition, vanilla, guided and guided Grad-CAM
//! backprop. See REFERENCE.md, "Saliency for embedding networks".
