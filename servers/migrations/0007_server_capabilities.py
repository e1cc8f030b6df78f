from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("servers", "0006_clamp_server_numbers")]

    operations = [
        migrations.AddField(
            model_name="mcpserver",
            name="capabilities",
            field=models.JSONField(blank=True, editable=False, null=True),
        ),
    ]
