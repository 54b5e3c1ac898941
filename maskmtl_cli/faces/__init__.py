"""Faces: detection (RetinaFace, MTCNN, dlib HOG/CNN), dlib's 68 landmarks and alignment.

Shared by ``maskmtl mask`` (landmarks to fit a mask) and ``maskmtl predict``/``serve`` (boxes
and the UTKFace-style crop). ``detection`` finds face boxes, ``landmarks`` fits dlib's 68 points
inside them, ``alignment`` crops a face the way UTKFace's aligned images were cropped, and
``dlib_models`` loads dlib's detectors and shape predictor once per process for both. Heavy
libraries (dlib, OpenCV, ONNX Runtime) load on first use, not on import.
"""
