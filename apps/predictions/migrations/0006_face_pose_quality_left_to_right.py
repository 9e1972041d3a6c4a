"""Head pose and quality per face, and faces numbered left to right. Rows made before keep null pose and
quality, and the face_index they had (most confident detection first): only new analyses are reordered."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("predictions", "0005_face_estimate"),
    ]

    operations = [
        migrations.AddField(
            model_name="faceestimate",
            name="brightness",
            field=models.FloatField(help_text="0-100: the mean luma of the face.", null=True),
        ),
        migrations.AddField(
            model_name="faceestimate",
            name="pose_pitch",
            field=models.FloatField(help_text="Degrees, approximate; > 0: the face looks up.", null=True),
        ),
        migrations.AddField(
            model_name="faceestimate",
            name="pose_roll",
            field=models.FloatField(help_text="Degrees; > 0: the head tilted clockwise as seen.", null=True),
        ),
        migrations.AddField(
            model_name="faceestimate",
            name="pose_yaw",
            field=models.FloatField(
                help_text="Degrees, approximate; > 0: the head turned to the photo's right.", null=True
            ),
        ),
        migrations.AddField(
            model_name="faceestimate",
            name="sharpness",
            field=models.FloatField(help_text="0-100; 50 is as sharp as the median UTKFace training face.", null=True),
        ),
        migrations.AlterField(
            model_name="faceestimate",
            name="face_index",
            field=models.PositiveSmallIntegerField(
                help_text="Left to right by box centre (then top to bottom) among the faces analysed: 0 is the leftmost."
            ),
        ),
    ]
