"""Pose keypoints: the pose JSON schemas, COCO-17 to OpenPose-18 conversion, and openpifpaf estimation."""
