/*=========================================================================
 *
 *  Copyright NumFOCUS
 *
 *  Licensed under the Apache License, Version 2.0 (the "License");
 *  you may not use this file except in compliance with the License.
 *  You may obtain a copy of the License at
 *
 *         http://www.apache.org/licenses/LICENSE-2.0.txt
 *
 *  Unless required by applicable law or agreed to in writing, software
 *  distributed under the License is distributed on an "AS IS" BASIS,
 *  WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 *  See the License for the specific language governing permissions and
 *  limitations under the License.
 *
 *=========================================================================*/
// kdbet bids: a BIDS App (BIDS_DIR OUTPUT_DIR participant|group). The
// participant level skull-strips the anatomical scans of the chosen
// participants into a BIDS derivatives dataset; the group level checks that
// every scan has its derivatives and merges the per-participant summaries.

#include "kdbetWorker.h"

#include "itksys/Directory.hxx"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <regex>

#ifndef KDBrainExtraction_VERSION
#  define KDBrainExtraction_VERSION "unknown"
#endif

namespace kdbet
{
namespace
{
/** The BIDS version whose derivatives rules the outputs follow. */
constexpr const char * BidsVersion = "1.9.0";

/** The name the input dataset has in the derivatives' BIDS URIs (bids:raw:...). */
constexpr const char * RawDatasetName = "raw";

/** One anatomical scan of the input dataset. */
struct BidsScan
{
  std::string Path;         // as found under BIDS_DIR
  std::string RelativePath; // from BIDS_DIR, for BIDS URIs
  std::string Folder;       // sub-X[/ses-Y]/anat
  std::string Subject;      // the label, without "sub-"
  std::string Session;      // the label, or empty
  std::string Entities;     // the file name's entities without the suffix: sub-X_ses-Y_acq-Z
  std::string Suffix;       // T1w, T2w, PDw, FLAIR
};

/** The derivative files of one scan, relative to OUTPUT_DIR. */
struct BidsOutputs
{
  std::string Mask;
  std::string MaskSidecar;
  std::string Brain;
  std::string BrainSidecar;
  std::string QualityControl; // empty when not asked for
};

std::vector<std::string>
ListFolder(const std::string & folder)
{
  itksys::Directory directory;
  directory.Load(folder);
  std::vector<std::string> names;
  for (unsigned long i = 0; i < directory.GetNumberOfFiles(); ++i)
  {
    const std::string name = directory.GetFile(i);
    if (name != "." && name != "..")
    {
      names.push_back(name);
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

/** A scan from a file name of a BIDS anat folder, or false when the name is
 * not `<entities>_<suffix>.nii[.gz]` with well-formed key-label entities that
 * begin with the folder's subject (and session). */
bool
ParseScanName(const std::string & name, const std::string & subject, const std::string & session, BidsScan & scan)
{
  static const std::regex pattern(R"(((?:[a-z]+-[a-zA-Z0-9]+_)*[a-z]+-[a-zA-Z0-9]+)_([a-zA-Z0-9]+)\.nii(\.gz)?)");
  std::smatch             match;
  if (!std::regex_match(name, match, pattern))
  {
    return false;
  }
  const std::string entities = match[1];
  std::string       expected = "sub-" + subject;
  if (!session.empty())
  {
    expected += "_ses-" + session;
  }
  if (entities != expected && entities.rfind(expected + "_", 0) != 0)
  {
    return false;
  }
  scan.Entities = entities;
  scan.Suffix = match[2];
  return true;
}

/** The anatomical scans of \a bidsDirectory with one of \a suffixes, of the
 * chosen participants and sessions (all when the lists are empty), in
 * subject, session, name order. */
std::vector<BidsScan>
FindScans(const std::string & bidsDirectory, const std::vector<std::string> & participants,
          const std::vector<std::string> & sessions, const std::vector<std::string> & suffixes)
{
  const auto chosen = [](const std::vector<std::string> & labels, const std::string & label) {
    return labels.empty() || std::find(labels.begin(), labels.end(), label) != labels.end();
  };
  std::vector<BidsScan> scans;
  std::set<std::string> subjectsFound;
  for (const auto & subjectFolder : ListFolder(bidsDirectory))
  {
    if (subjectFolder.rfind("sub-", 0) != 0 ||
        !itksys::SystemTools::FileIsDirectory(bidsDirectory + "/" + subjectFolder))
    {
      continue;
    }
    const std::string subject = subjectFolder.substr(4);
    subjectsFound.insert(subject);
    if (!chosen(participants, subject))
    {
      continue;
    }
    // With sessions, the anat folders are one level down; without, right here.
    std::vector<std::pair<std::string, std::string>> anatFolders; // (folder, session)
    for (const auto & entry : ListFolder(bidsDirectory + "/" + subjectFolder))
    {
      if (entry.rfind("ses-", 0) == 0 && chosen(sessions, entry.substr(4)))
      {
        anatFolders.emplace_back(subjectFolder + "/" + entry + "/anat", entry.substr(4));
      }
      else if (entry == "anat" && sessions.empty())
      {
        anatFolders.emplace_back(subjectFolder + "/anat", "");
      }
    }
    for (const auto & anat : anatFolders)
    {
      const std::string folder = bidsDirectory + "/" + anat.first;
      if (!itksys::SystemTools::FileIsDirectory(folder))
      {
        continue;
      }
      for (const auto & name : ListFolder(folder))
      {
        BidsScan scan;
        if (!ParseScanName(name, subject, anat.second, scan) ||
            std::find(suffixes.begin(), suffixes.end(), scan.Suffix) == suffixes.end())
        {
          continue;
        }
        scan.Path = folder + "/" + name;
        scan.RelativePath = anat.first + "/" + name;
        scan.Folder = anat.first;
        scan.Subject = subject;
        scan.Session = anat.second;
        scans.push_back(scan);
      }
    }
  }
  for (const auto & participant : participants)
  {
    if (!subjectsFound.count(participant))
    {
      throw UsageError("participant '" + participant + "' is not in " + bidsDirectory + " (no sub-" + participant +
                       " folder)");
    }
  }
  return scans;
}

/** The mask's desc label: "brain" for T1w scans (the name fMRIPrep and
 * sMRIPrep users look for), "brain<suffix>" for the others, so that a T1w
 * and a T2w of one session do not write the same mask file. */
std::string
MaskDescription(const BidsScan & scan)
{
  return scan.Suffix == "T1w" ? "brain" : "brain" + scan.Suffix;
}

BidsOutputs
OutputsOf(const BidsScan & scan, bool qualityControl)
{
  BidsOutputs       outputs;
  const std::string stem = scan.Folder + "/" + scan.Entities;
  outputs.Mask = stem + "_desc-" + MaskDescription(scan) + "_mask.nii.gz";
  outputs.MaskSidecar = stem + "_desc-" + MaskDescription(scan) + "_mask.json";
  outputs.Brain = stem + "_desc-brain_" + scan.Suffix + ".nii.gz";
  outputs.BrainSidecar = stem + "_desc-brain_" + scan.Suffix + ".json";
  if (qualityControl)
  {
    // Figures lie beside the subject's data, as fMRIPrep's do; .bidsignore
    // tells validators they are not BIDS files.
    outputs.QualityControl =
      "sub-" + scan.Subject + "/figures/" + scan.Entities + "_desc-" + MaskDescription(scan) + "_mask.png";
  }
  return outputs;
}

bool
Exists(const std::string & outputDirectory, const std::string & relative)
{
  return relative.empty() || itksys::SystemTools::FileExists(outputDirectory + "/" + relative, true);
}

/** Whether every derivative of a scan is there (the mask's sidecar is
 * written last, so a run stopped part-way is redone). */
bool
IsFinished(const std::string & outputDirectory, const BidsOutputs & outputs)
{
  return Exists(outputDirectory, outputs.Mask) && Exists(outputDirectory, outputs.Brain) &&
         Exists(outputDirectory, outputs.BrainSidecar) && Exists(outputDirectory, outputs.QualityControl) &&
         Exists(outputDirectory, outputs.MaskSidecar);
}

/** What made the outputs: the same block in both sidecars of a scan. */
nlohmann::ordered_json
ExtractionRecord(const Models & models, const JobResult & result)
{
  nlohmann::ordered_json record;
  record["Version"] = KDBrainExtraction_VERSION;
  record["StudentModel"] = models.Student->GetChecksum();
  record["RefinerModel"] = models.Refiner ? nlohmann::ordered_json(models.Refiner->GetChecksum()) : nullptr;
  record["Threshold"] = models.Threshold;
  record["BorderMillimetres"] = models.Border;
  record["TestTimeMirroring"] = models.Mirror;
  record["Device"] = result.Device;
  record["BrainVolumeMillilitres"] = result.BrainMillilitres;
  return record;
}

void
WriteJson(const nlohmann::ordered_json & json, const std::string & fileName)
{
  itk::KDBrainExtractionOutputFile::WriteBytes(
    json.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n", fileName, "the JSON file");
}

/** The sidecars of a scan's mask and brain image (BIDS derivatives: Type and
 * Sources for the mask, SkullStripped and Sources for the brain image). */
void
WriteSidecars(const std::string & outputDirectory, const BidsScan & scan, const BidsOutputs & outputs,
              const Models & models, const JobResult & result)
{
  const std::string      rawSource = std::string("bids:") + RawDatasetName + ":" + scan.RelativePath;
  nlohmann::ordered_json brain;
  brain["Description"] = "The " + scan.Suffix + " scan with everything outside the brain mask set to 0.";
  brain["SkullStripped"] = true;
  brain["Sources"] = { rawSource, "bids::" + outputs.Mask };
  brain["KDBrainExtraction"] = ExtractionRecord(models, result);
  WriteJson(brain, outputDirectory + "/" + outputs.BrainSidecar);
  nlohmann::ordered_json mask;
  mask["Description"] = "Brain mask (1 inside, 0 outside) of the " + scan.Suffix +
                        " scan, on its grid, by the distilled student UNet++ of KDBrainExtraction.";
  mask["Type"] = "Brain";
  mask["Sources"] = { rawSource };
  mask["KDBrainExtraction"] = ExtractionRecord(models, result);
  WriteJson(mask, outputDirectory + "/" + outputs.MaskSidecar);
}

/** dataset_description.json and .bidsignore, when not there yet: tasks of a
 * job array may all try, and the first complete file stays. */
void
WriteDatasetDescription(const std::string & bidsDirectory, const std::string & outputDirectory,
                        const std::string & commandLine)
{
  const std::string descriptionFile = outputDirectory + "/dataset_description.json";
  if (!itksys::SystemTools::FileExists(descriptionFile, true))
  {
    nlohmann::ordered_json description;
    description["Name"] = "KDBrainExtraction brain masks";
    description["BIDSVersion"] = BidsVersion;
    description["DatasetType"] = "derivative";
    nlohmann::ordered_json generatedBy;
    generatedBy["Name"] = "kdbet";
    generatedBy["Version"] = KDBrainExtraction_VERSION;
    generatedBy["Description"] = "Skull stripping by the knowledge-distilled student UNet++ of KDBrainExtraction; "
                                 "command: " +
                                 commandLine;
    description["GeneratedBy"] = nlohmann::ordered_json::array({ generatedBy });
    description["DatasetLinks"] = { { RawDatasetName,
                                      "file://" + itksys::SystemTools::CollapseFullPath(bidsDirectory) } };
    WriteJson(description, descriptionFile);
  }
  const std::string ignoreFile = outputDirectory + "/.bidsignore";
  if (!itksys::SystemTools::FileExists(ignoreFile, true))
  {
    itk::KDBrainExtractionOutputFile::WriteBytes("*/figures/\nlogs/\n", ignoreFile, "the .bidsignore file");
  }
}

/** The per-participant summary: this run's rows, and the rows of scans it
 * did not touch from an earlier run (a rerun for one contrast keeps the
 * others' rows). */
void
WriteParticipantSummary(const std::string & fileName, const nlohmann::ordered_json & rows)
{
  auto                  merged = nlohmann::ordered_json::array();
  std::ifstream         earlier(fileName);
  std::set<std::string> inputs;
  for (const auto & row : rows)
  {
    inputs.insert(row["input"].get<std::string>());
  }
  if (earlier)
  {
    const auto old = nlohmann::ordered_json::parse(earlier, nullptr, false);
    if (old.is_array())
    {
      for (const auto & row : old)
      {
        if (row.is_object() && row.contains("input") && !inputs.count(row["input"].get<std::string>()))
        {
          merged.push_back(row);
        }
      }
    }
  }
  for (const auto & row : rows)
  {
    merged.push_back(row);
  }
  WriteSummaryRows(merged, fileName);
}

/** A skipped scan's row carries the brain volume its mask's sidecar recorded. */
void
ReadFinishedResult(const std::string & sidecarFile, JobResult & result)
{
  std::ifstream stream(sidecarFile);
  const auto    sidecar = nlohmann::ordered_json::parse(stream, nullptr, false);
  if (sidecar.is_object() && sidecar.contains("KDBrainExtraction"))
  {
    const auto & record = sidecar["KDBrainExtraction"];
    if (record.contains("BrainVolumeMillilitres") && record["BrainVolumeMillilitres"].is_number())
    {
      result.BrainMillilitres = record["BrainVolumeMillilitres"].get<double>();
      result.HasMask = true;
    }
    result.Device = record.value("Device", std::string());
  }
}

std::string
SummaryName(const std::string & subject)
{
  return "logs/sub-" + subject + "_kdbet_summary.json";
}

int
RunParticipantLevel(const std::string & bidsDirectory, const std::string & outputDirectory,
                    const std::vector<BidsScan> & scans, Models & models, bool overwrite, bool qualityControl,
                    const std::string & studentFile, const std::string & refinerFile, bool refine,
                    const std::string & summaryFile, const std::string & commandLine, bool isolate)
{
  if (!itksys::SystemTools::MakeDirectory(outputDirectory + "/logs"))
  {
    throw UsageError(outputDirectory + ": cannot create the output folder");
  }
  itk::KDBrainExtractionOutputFile::CheckOutputName(outputDirectory + "/logs/summary", false);
  const auto runStart = Clock::now(); // the task's throughput, model loading included
  LoadModels(models, true, false, refine, studentFile, std::string(), refinerFile);
  WriteDatasetDescription(bidsDirectory, outputDirectory, commandLine);

  JobRunner              runner(models, isolate);
  ProgressDisplay        progress(scans.size());
  std::vector<JobResult> results;
  for (std::size_t index = 0; index < scans.size(); ++index)
  {
    const BidsScan &  scan = scans[index];
    const BidsOutputs outputs = OutputsOf(scan, qualityControl);
    JobResult         result;
    result.Input = scan.Path;
    progress.StartVolume(index, scan.Path, "reading");
    const auto start = Clock::now();
    if (!overwrite && IsFinished(outputDirectory, outputs))
    {
      result.Succeeded = true;
      result.Skipped = true;
      ReadFinishedResult(outputDirectory + "/" + outputs.MaskSidecar, result);
    }
    else
    {
      RunAlone(result, start, [&] {
        for (const auto & folder : { scan.Folder, std::string("sub-") + scan.Subject + "/figures" })
        {
          if (!itksys::SystemTools::MakeDirectory(outputDirectory + "/" + folder))
          {
            itkGenericExceptionMacro(<< outputDirectory << "/" << folder << ": cannot create the folder");
          }
        }
        Job job;
        job.Input = scan.Path;
        job.Outputs["mask"] = outputDirectory + "/" + outputs.Mask;
        job.Outputs["brain"] = outputDirectory + "/" + outputs.Brain;
        if (qualityControl)
        {
          job.Outputs["qc"] = outputDirectory + "/" + outputs.QualityControl;
        }
        runner.Run(job, progress, result);
        WriteSidecars(outputDirectory, scan, outputs, models, result);
      });
      if (!result.Succeeded)
      {
        // A failed scan leaves no folder of its own behind (rmdir removes only empty ones).
        for (const auto & folder : { scan.Folder,
                                     std::string("sub-") + scan.Subject + "/figures",
                                     itksys::SystemTools::GetFilenamePath(scan.Folder),
                                     std::string("sub-") + scan.Subject })
        {
          ::rmdir((outputDirectory + "/" + folder).c_str());
        }
      }
    }
    progress.FinishVolume(result);
    results.push_back(result);
  }

  // One summary per participant: tasks of a job array never share a file.
  std::map<std::string, std::vector<JobResult>> bySubject;
  for (std::size_t index = 0; index < scans.size(); ++index)
  {
    bySubject[scans[index].Subject].push_back(results[index]);
  }
  for (const auto & subject : bySubject)
  {
    WriteParticipantSummary(outputDirectory + "/" + SummaryName(subject.first), SummaryRows(subject.second, models));
  }
  if (!summaryFile.empty())
  {
    WriteSummary(results, models, summaryFile);
  }
  std::size_t failed = 0;
  std::size_t skipped = 0;
  for (const auto & result : results)
  {
    failed += !result.Succeeded;
    skipped += result.Skipped;
  }
  std::cout << "kdbet bids: " << results.size() - failed << " of " << results.size() << " scans done";
  if (skipped)
  {
    std::cout << " (" << skipped << " already done, skipped; --overwrite redoes them)";
  }
  std::cout << " in " << std::fixed << std::setprecision(1) << SecondsSince(runStart) << " s; derivatives in "
            << outputDirectory << std::endl;
  if (failed)
  {
    std::cout << "kdbet bids: " << failed << " failed:" << std::endl;
    for (const auto & result : results)
    {
      if (!result.Succeeded)
      {
        // Messages name their file already, mostly; the scan is named once.
        std::cout << "  " << (result.Message.rfind(result.Input, 0) == 0 ? "" : result.Input + ": ") << result.Message
                  << std::endl;
      }
    }
  }
  return failed ? 1 : 0;
}

/** The group level: every chosen scan must have its derivatives; the
 * participants' summaries become one table. */
int
RunGroupLevel(const std::string & outputDirectory, const std::vector<BidsScan> & scans, bool qualityControl,
              const std::string & summaryFile)
{
  std::vector<std::string> missing;
  std::set<std::string>    subjects;
  for (const auto & scan : scans)
  {
    subjects.insert(scan.Subject);
    if (!IsFinished(outputDirectory, OutputsOf(scan, qualityControl)))
    {
      missing.push_back(scan.RelativePath);
    }
  }
  auto        rows = nlohmann::ordered_json::array();
  std::size_t failed = 0;
  for (const auto & subject : subjects)
  {
    std::ifstream stream(outputDirectory + "/" + SummaryName(subject));
    if (!stream)
    {
      continue;
    }
    const auto participantRows = nlohmann::ordered_json::parse(stream, nullptr, false);
    if (!participantRows.is_array())
    {
      itkGenericExceptionMacro(<< outputDirectory << "/" << SummaryName(subject) << ": not a kdbet summary");
    }
    for (const auto & row : participantRows)
    {
      failed += row.value("status", std::string()) == "failed";
      rows.push_back(row);
    }
  }
  const std::string tableFile = summaryFile.empty() ? outputDirectory + "/logs/kdbet_group_summary.csv" : summaryFile;
  WriteSummaryRows(rows, tableFile);
  std::cout << "kdbet bids group: " << scans.size() - missing.size() << " of " << scans.size()
            << " scans have their derivatives; " << rows.size() << " summary rows (" << failed << " failed) in "
            << tableFile << std::endl;
  for (const auto & scan : missing)
  {
    std::cout << "  missing: " << scan << std::endl;
  }
  return missing.empty() && failed == 0 ? 0 : 1;
}

const char * BidsFooter = R"(
Outputs (BIDS derivatives, beside the source entities):
  sub-X[/ses-Y]/anat/<entities>_desc-brain_mask.nii.gz   mask of a T1w scan (uint8 0/1)
  sub-X[/ses-Y]/anat/<entities>_desc-brain<Suffix>_mask.nii.gz   of a T2w, PDw, FLAIR scan
  sub-X[/ses-Y]/anat/<entities>_desc-brain_<Suffix>.nii.gz   the skull-stripped scan
  a JSON sidecar for each (Type, Sources as BIDS URIs, SkullStripped, the model's
  checksum and settings), dataset_description.json, sub-X/figures/*.png (QC),
  logs/sub-X_kdbet_summary.json (one per participant: tasks never share a file).
A rerun skips scans whose outputs are all there (--overwrite redoes them); a bad
scan fails alone and is listed; the exit status is 1 when any failed.
The group level checks that every scan has its derivatives and merges the
participants' summaries into logs/kdbet_group_summary.csv.

Examples:
  kdbet bids /data/study /data/study/derivatives/kdbet participant
  kdbet bids /data/study /out participant --participant-label 01 02 --suffix T1w T2w
  kdbet bids /data/study /out group
  sbatch --array=1-40 scripts/slurm/kdbet-bids-array.sbatch /data/study /out   (Slurm, one
      participant per task; see README "Running a study")
)";
} // namespace

int
Bids(int argc, char * argv[], const std::string & commandLine)
{
  CLI::App app("Skull stripping of a BIDS dataset's anatomical scans (T1w, T2w, PDw, FLAIR) into a BIDS "
               "derivatives dataset, the BIDS Apps way.",
               "kdbet bids");
  app.footer(BidsFooter);
  std::string              bidsDirectory;
  std::string              outputDirectory;
  std::string              analysisLevel;
  std::vector<std::string> participants;
  std::vector<std::string> sessions;
  std::vector<std::string> suffixes{ "T1w", "T2w", "PDw", "FLAIR" };
  bool                     overwrite = false;
  bool                     noQualityControl = false;
  std::string              summaryFile;
  std::string              studentFile;
  std::string              refinerFile;
  bool                     refine = false;
  bool                     gpu = false;
  bool                     inProcess = false;
  Models                   models;
  models.Device = "auto";
  models.Threads = DefaultNumberOfThreads();
  app.add_option("bids_dir", bidsDirectory, "the BIDS dataset (with dataset_description.json)")->required();
  app.add_option("output_dir", outputDirectory, "the derivatives dataset to write (created if needed)")->required();
  app.add_option("analysis_level", analysisLevel, "participant or group")
    ->required()
    ->check(CLI::IsMember({ "participant", "group" }));
  app.add_option(
    "--participant-label,--participant_label", participants, "participants (with or without sub-); default all");
  app.add_option("--session-label,--session_label", sessions, "sessions (with or without ses-); default all");
  app.add_option("--suffix", suffixes, "contrasts to process (default T1w T2w PDw FLAIR)")
    ->check(CLI::IsMember({ "T1w", "T2w", "PDw", "FLAIR" }));
  app.add_flag("--overwrite", overwrite, "redo scans whose outputs are there");
  app.add_flag("--no-qc", noQualityControl, "no QC pictures");
  app.add_option("--summary", summaryFile, "also write this run's table here (CSV, or JSON for .json)");
  app.add_option("--model", studentFile, "student model (default: the shipped student)");
  app.add_flag("--refine", refine, "the fine stage (experimental; see kdbet extract --help)");
  app.add_option("--refiner-model", refinerFile, "the fine stage's model (implies --refine)");
  app.add_option("--device", models.Device, "auto (default: CUDA when present, else CPU), cpu, cuda, cuda:N");
  app.add_flag("-g,--gpu", gpu, "run on the GPU (as --device cuda)");
  app.add_option("-t,--threads", models.Threads, "CPU threads for the network (default: all cores)")
    ->check(CLI::Range(1u, 1024u));
  app.add_option("--threshold", models.Threshold, "brain probability threshold (default 0.5)");
  app.add_option("-b,--border", models.Border, "move the mask's border out (> 0) or in (< 0), mm (default 0)");
  app.add_flag("--mirror", models.Mirror, "test-time left-right mirroring (twice the network time)");
  app.add_flag("--in-process",
               inProcess,
               "run every scan in this process rather than in a worker process (a crash then ends the run)");

  std::vector<std::string> arguments(argv, argv + argc);
  std::reverse(arguments.begin(), arguments.end()); // CLI11 takes them last first
  try
  {
    app.parse(arguments);
  }
  catch (const CLI::CallForHelp &)
  {
    std::cout << app.help();
    return 0;
  }
  catch (const CLI::ParseError & error)
  {
    throw UsageError(std::string(error.what()) + " (see kdbet bids --help)");
  }
  for (auto & labels : { std::make_pair(&participants, "sub-"), std::make_pair(&sessions, "ses-") })
  {
    for (auto & label : *labels.first)
    {
      label = label.rfind(labels.second, 0) == 0 ? label.substr(4) : label;
    }
  }
  if (gpu)
  {
    if (models.Device != "auto" && models.Device.rfind("cuda", 0) != 0)
    {
      throw UsageError("--gpu and --device " + models.Device + " contradict each other");
    }
    models.Device = models.Device == "auto" ? "cuda" : models.Device;
  }
  if (!itksys::SystemTools::FileIsDirectory(bidsDirectory))
  {
    throw UsageError(bidsDirectory + ": no such folder (the BIDS dataset)");
  }
  if (!itksys::SystemTools::FileExists(bidsDirectory + "/dataset_description.json", true))
  {
    throw UsageError(bidsDirectory + ": not a BIDS dataset (no dataset_description.json)");
  }
  if (itksys::SystemTools::CollapseFullPath(bidsDirectory) == itksys::SystemTools::CollapseFullPath(outputDirectory))
  {
    throw UsageError("the output folder must not be the BIDS dataset itself (use " + bidsDirectory +
                     "/derivatives/kdbet)");
  }
  const auto scans = FindScans(bidsDirectory, participants, sessions, suffixes);
  if (scans.empty())
  {
    throw UsageError(bidsDirectory + ": no anatomical scans of the chosen participants, sessions and suffixes");
  }
  if (analysisLevel == "group")
  {
    return RunGroupLevel(outputDirectory, scans, !noQualityControl, summaryFile);
  }
  return RunParticipantLevel(bidsDirectory,
                             outputDirectory,
                             scans,
                             models,
                             overwrite,
                             !noQualityControl,
                             studentFile,
                             refinerFile,
                             refine,
                             summaryFile,
                             commandLine,
                             !inProcess);
}
} // namespace kdbet
