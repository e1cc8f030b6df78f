from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("servers", "0007_server_extensions")]

    operations = [
        migrations.AddField(
            model_name="mcpserver",
            name="capabilities",
            field=models.JSONField(blank=True, editable=False, null=True),
        ),
    ]
